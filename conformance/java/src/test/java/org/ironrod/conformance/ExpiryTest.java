package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.commons.util.CloseableIterator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Lifespan and max-idle with short real waits; the metadata getWithMetadata reports. */
class ExpiryTest {
   static final Ironrod.Managers MANAGERS = new Ironrod.Managers();
   /** Slack for clock reads between this JVM and the server (same machine). */
   static final long SLACK_MS = 1_500;

   @AfterAll
   static void close() {
      MANAGERS.close();
   }

   static java.util.stream.Stream<ClientIntelligence> intelligences() {
      return Ironrod.intelligences();
   }

   static void sleepUntil(long deadlineMillis) throws InterruptedException {
      long left = deadlineMillis - System.currentTimeMillis();
      if (left > 0) Thread.sleep(left);
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void immortalEntryMetadata(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "loginFailures");
      String k = Ironrod.unique("immortal") + "k";
      c.put(k, "v");
      MetadataValue<String> m = c.getWithMetadata(k);
      assertEquals("v", m.getValue());
      assertEquals(-1, m.getLifespan(), "no lifespan");
      assertEquals(-1, m.getMaxIdle(), "no max-idle");
      assertEquals(-1, m.getCreated(), "created is only reported for mortal entries");
      assertEquals(-1, m.getLastUsed(), "lastUsed is only reported with max-idle");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void lifespanExpires(ClientIntelligence intel) throws Exception {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "loginFailures");
      String p = Ironrod.unique("lifespan");
      long before = System.currentTimeMillis();
      c.put(p + "s", "v", 1, TimeUnit.SECONDS);
      c.put(p + "ms", "v", 1500, TimeUnit.MILLISECONDS);
      c.put(p + "long", "v", 1, TimeUnit.HOURS);
      long after = System.currentTimeMillis();

      MetadataValue<String> m = c.getWithMetadata(p + "s");
      assertNotNull(m, "alive right after the put");
      assertEquals(1, m.getLifespan(), "lifespan in seconds");
      assertEquals(-1, m.getMaxIdle());
      assertEquals(-1, m.getLastUsed(), "no lastUsed without max-idle");
      assertTrue(m.getCreated() >= before - SLACK_MS && m.getCreated() <= after + SLACK_MS,
            "created is the put time in ms: " + m.getCreated() + " not in [" + before + ", " + after + "]");
      assertEquals(3600, c.getWithMetadata(p + "long").getLifespan());
      assertEquals("v", c.get(p + "ms"), "1500 ms lifespan: alive right after the put");

      sleepUntil(after + 2_300);
      assertNull(c.get(p + "s"), "1 s lifespan is over");
      assertNull(c.getWithMetadata(p + "s"));
      assertFalse(c.containsKey(p + "s"));
      assertNull(c.get(p + "ms"), "1500 ms lifespan is over");
      assertEquals("v", c.get(p + "long"), "1 h lifespan is not over");

      // An expired entry behaves as absent for conditional writes too.
      assertNull(c.withFlags(org.infinispan.client.hotrod.Flag.FORCE_RETURN_VALUE).putIfAbsent(p + "s", "again"),
            "putIfAbsent over an expired entry succeeds");
      assertEquals("again", c.get(p + "s"));
      assertFalse(c.replaceWithVersion(p + "long-gone", "x", 1), "replaceWithVersion of an absent key");
      assertNull(c.withFlags(org.infinispan.client.hotrod.Flag.FORCE_RETURN_VALUE).replace(p + "ms", "x"),
            "replace over an expired entry does nothing");
      assertFalse(c.containsKey(p + "ms"), "replace must not revive an expired entry");
      // ... and for iteration.
      try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 100)) {
         while (it.hasNext()) {
            assertFalse(String.valueOf(it.next().getKey()).equals(p + "ms"), "iteration returned an expired entry");
         }
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void maxIdleExpiresUnlessTouched(ClientIntelligence intel) throws Exception {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "sessions");
      String p = Ironrod.unique("maxidle");
      long before = System.currentTimeMillis();
      c.put(p + "touched", "v", -1, TimeUnit.SECONDS, 1, TimeUnit.SECONDS);
      c.put(p + "idle", "v", -1, TimeUnit.SECONDS, 1, TimeUnit.SECONDS);
      long after = System.currentTimeMillis();

      MetadataValue<String> m = c.getWithMetadata(p + "idle");
      assertNotNull(m);
      assertEquals(-1, m.getLifespan());
      assertEquals(1, m.getMaxIdle(), "max-idle in seconds");
      assertEquals(-1, m.getCreated(), "no created without lifespan");
      assertTrue(m.getLastUsed() >= before - SLACK_MS && m.getLastUsed() <= after + SLACK_MS,
            "lastUsed is the last access time in ms: " + m.getLastUsed());

      // Touch one entry every 250 ms for 2.5 s: it outlives its 1 s max-idle; the other does not.
      long start = System.currentTimeMillis();
      for (int i = 1; i <= 10; i++) {
         sleepUntil(start + i * 250L);
         assertEquals("v", c.get(p + "touched"), "a read resets max-idle (after " + (i * 250) + " ms)");
      }
      assertNull(c.get(p + "idle"), "untouched for 2.5 s with a 1 s max-idle");
      assertFalse(c.containsKey(p + "idle"));

      long lastTouch = System.currentTimeMillis();
      sleepUntil(lastTouch + 2_000);
      assertNull(c.get(p + "touched"), "idle for 2 s with a 1 s max-idle");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void lastUsedAdvancesOnRead(ClientIntelligence intel) throws Exception {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "clientSessions");
      String k = Ironrod.unique("lastused") + "k";
      c.put(k, "v", 10, TimeUnit.MINUTES, 5, TimeUnit.MINUTES);
      MetadataValue<String> m1 = c.getWithMetadata(k);
      assertEquals(600, m1.getLifespan());
      assertEquals(300, m1.getMaxIdle());
      assertTrue(m1.getCreated() > 0 && m1.getLastUsed() > 0, "created and lastUsed are reported");
      Thread.sleep(1_100);
      assertEquals("v", c.get(k));
      MetadataValue<String> m2 = c.getWithMetadata(k);
      assertEquals(m1.getCreated(), m2.getCreated(), "a read does not change created");
      assertTrue(m2.getLastUsed() >= m1.getLastUsed() + 1_000,
            "a read moves lastUsed: " + m1.getLastUsed() + " -> " + m2.getLastUsed());
      assertEquals(m1.getVersion(), m2.getVersion(), "a read does not change the version");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void lifespanBoundsMaxIdleTouches(ClientIntelligence intel) throws Exception {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "offlineSessions");
      String k = Ironrod.unique("both") + "k";
      // lifespan 2 s, max-idle 1.5 s; touched until 1.2 s, checked at 2.4 s: idle only 1.2 s, so
      // only the lifespan can have ended it.
      c.put(k, "v", 2_000, TimeUnit.MILLISECONDS, 1_500, TimeUnit.MILLISECONDS);
      long start = System.currentTimeMillis();
      MetadataValue<String> m = c.getWithMetadata(k);
      assertEquals(2, m.getLifespan());
      assertTrue(m.getMaxIdle() > 0);
      for (int i = 1; i <= 3; i++) {
         sleepUntil(start + i * 400L);
         assertEquals("v", c.get(k), "within lifespan and touched");
      }
      sleepUntil(start + 2_400);
      assertNull(c.get(k), "lifespan ends the entry even though it was read recently");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void replaceResetsExpiration(ClientIntelligence intel) throws Exception {
      // Keycloak refreshes a session's lifespan/max-idle with replace/replaceWithVersion.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "sessions");
      String k = Ironrod.unique("refresh") + "k";
      c.put(k, "v1", 1, TimeUnit.SECONDS);
      c.replace(k, "v2", 1, TimeUnit.HOURS);
      MetadataValue<String> m = c.getWithMetadata(k);
      assertEquals(3600, m.getLifespan());
      assertTrue(c.replaceWithVersion(k, "v3", m.getVersion(), 7200, 1800));
      Thread.sleep(1_500);
      MetadataValue<String> m2 = c.getWithMetadata(k);
      assertNotNull(m2, "the replaced lifespan applies, not the original 1 s");
      assertEquals("v3", m2.getValue());
      assertEquals(7200, m2.getLifespan());
      assertEquals(1800, m2.getMaxIdle());
      c.put(k, "v4");
      assertEquals(-1, c.getWithMetadata(k).getLifespan(), "a put without lifespan makes it immortal");
   }
}
