package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.infinispan.client.hotrod.CacheTopologyInfo;
import org.infinispan.client.hotrod.Flag;
import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.commons.util.CloseableIterator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Fixed protocol versions, as old Keycloak releases pinned them (2.6 for JDG 7.2, 2.9 for 9.4
 * clients), and the versions later clients negotiate. 16.0 clients only speak 3.0 and newer.
 */
class ProtocolVersionTest {

   static List<String> versions() {
      List<String> v = new ArrayList<>();
      if (Ironrod.clientMajor() < 16) {
         v.addAll(List.of("2.6", "2.9"));
      }
      v.addAll(List.of("3.0", "3.1", "4.0"));
      if (Ironrod.clientMajor() >= 16) v.add("4.1");
      v.add("AUTO");
      return v;
   }

   static Stream<Arguments> versionsAndIntelligences() {
      List<Arguments> out = new ArrayList<>();
      for (String v : versions()) {
         for (ClientIntelligence i : List.of(ClientIntelligence.BASIC, ClientIntelligence.HASH_DISTRIBUTION_AWARE)) {
            out.add(Arguments.of(v, i));
         }
      }
      return out.stream();
   }

   /** By name, so that the source compiles against 16.0, which lacks the 2.x constants. */
   static ProtocolVersion protocol(String v) {
      return "AUTO".equals(v) ? ProtocolVersion.PROTOCOL_VERSION_AUTO
            : ProtocolVersion.valueOf("PROTOCOL_VERSION_" + v.replace(".", ""));
   }

   static boolean is2x(String v) {
      return v.startsWith("2.");
   }

   @ParameterizedTest(name = "[{index}] protocol {0}, {1}")
   @MethodSource("versionsAndIntelligences")
   void keycloakOperationsAtFixedVersion(String version, ClientIntelligence intel) throws Exception {
      RemoteCacheManager rcm = new RemoteCacheManager(Ironrod.config(intel, protocol(version)).build());
      try {
         RemoteCache<String, String> c = rcm.getCache("sessions");
         assertNotNull(c, "getCache(sessions) at " + version);
         String p = Ironrod.unique("v" + version);

         // Plain operations.
         assertNull(c.get(p + "a"));
         c.put(p + "a", "1");
         assertEquals("1", c.get(p + "a"));
         assertTrue(c.containsKey(p + "a"));
         assertEquals("1", c.withFlags(Flag.FORCE_RETURN_VALUE).put(p + "a", "2"), "previous value at " + version);
         assertEquals("2", c.withFlags(Flag.FORCE_RETURN_VALUE).putIfAbsent(p + "a", "3"));
         assertNull(c.withFlags(Flag.FORCE_RETURN_VALUE).putIfAbsent(p + "b", "b"));
         assertEquals("2", c.withFlags(Flag.FORCE_RETURN_VALUE).replace(p + "a", "4"));
         assertEquals("4", c.withFlags(Flag.FORCE_RETURN_VALUE).remove(p + "a"));
         assertFalse(c.containsKey(p + "a"));

         // Versioned replace loop, 4 threads.
         c.put(p + "n", "0");
         List<Thread> threads = new ArrayList<>();
         List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
         for (int t = 0; t < 4; t++) {
            Thread th = new Thread(() -> {
               try {
                  for (int i = 0; i < 40; i++) {
                     while (true) {
                        MetadataValue<String> mv = c.getWithMetadata(p + "n");
                        String next = Integer.toString(Integer.parseInt(mv.getValue()) + 1);
                        if (c.replaceWithVersion(p + "n", next, mv.getVersion())) break;
                     }
                  }
               } catch (Throwable e) {
                  errors.add(e);
               }
            });
            th.start();
            threads.add(th);
         }
         for (Thread th : threads) th.join(60_000);
         assertTrue(errors.isEmpty(), "replace loop errors at " + version + ": " + errors);
         assertEquals("160", c.get(p + "n"), "no lost update at " + version);

         // Expiration parameters and metadata.
         c.put(p + "e", "v", 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES);
         MetadataValue<String> m = c.getWithMetadata(p + "e");
         assertEquals(3600, m.getLifespan());
         assertEquals(600, m.getMaxIdle());
         assertTrue(m.getCreated() > 0 && m.getLastUsed() > 0);

         if (is2x(version)) {
            // Hot Rod 2.x: a duration above 30 days is an absolute Unix time (Keycloak's
            // InfinispanUtil.toHotrodTimeMs adds "now" for protocols below 3.0).
            long absolute = System.currentTimeMillis() / 1000 + 120;
            c.put(p + "abs", "v", absolute, TimeUnit.SECONDS);
            long left = c.getWithMetadata(p + "abs").getLifespan();
            assertTrue(left >= 100 && left <= 125, "2.x absolute expiry: remaining lifespan " + left + " s");
            c.put(p + "absidle", "v", -1, TimeUnit.SECONDS, absolute, TimeUnit.SECONDS);
            long idle = c.getWithMetadata(p + "absidle").getMaxIdle();
            assertTrue(idle >= 100 && idle <= 125, "2.x absolute max-idle: " + idle + " s");
         } else {
            c.put(p + "abs", "v", 40, TimeUnit.DAYS);
            assertEquals(40L * 24 * 3600, c.getWithMetadata(p + "abs").getLifespan(),
                  "3.0+: 40 days is a duration, not a Unix time");
         }

         // Bulk operations.
         Map<String, String> bulk = new HashMap<>();
         for (int i = 0; i < 20; i++) bulk.put(p + "bulk" + i, "b" + i);
         c.putAll(bulk);
         Map<String, String> got = c.getAll(bulk.keySet());
         assertEquals(bulk, got);
         assertTrue(c.size() >= 20);

         // Iteration: our keys, each exactly once.
         Map<String, String> seen = new HashMap<>();
         try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 16)) {
            while (it.hasNext()) {
               Map.Entry<Object, Object> e = it.next();
               String k = (String) e.getKey();
               if (k.startsWith(p + "bulk")) assertNull(seen.put(k, (String) e.getValue()), "twice: " + k);
            }
         }
         assertEquals(bulk, seen, "iteration at " + version);

         // Iteration with metadata (the remote store's preload).
         c.put(p + "meta", "m", 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES);
         MetadataValue<Object> found = null;
         try (CloseableIterator<Map.Entry<Object, MetadataValue<Object>>> it = c.retrieveEntriesWithMetadata(null, 32)) {
            while (it.hasNext()) {
               Map.Entry<Object, MetadataValue<Object>> e = it.next();
               if (e.getKey().equals(p + "meta")) {
                  assertNull(found, "twice");
                  found = e.getValue();
               }
            }
         }
         assertNotNull(found, "metadata iteration at " + version);
         assertEquals("m", found.getValue());
         assertEquals(3600, found.getLifespan());
         assertEquals(600, found.getMaxIdle());
         assertEquals(c.getWithMetadata(p + "meta").getVersion(), found.getVersion());

         if (intel == ClientIntelligence.HASH_DISTRIBUTION_AWARE) {
            CacheTopologyInfo info = c.getCacheTopologyInfo();
            assertNotNull(info, "topology at " + version);
            assertTrue(info.getNumSegments() > 0, "segments at " + version);
            Set<Integer> segs = Set.of(Ironrod.segmentOf(p + "bulk0", info.getNumSegments()));
            Map<String, String> inSeg = new HashMap<>();
            try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, segs, 16)) {
               while (it.hasNext()) {
                  Map.Entry<Object, Object> e = it.next();
                  String k = (String) e.getKey();
                  assertTrue(segs.contains(Ironrod.segmentOf(k, info.getNumSegments())), k + " outside " + segs);
                  if (k.startsWith(p + "bulk")) inSeg.put(k, (String) e.getValue());
               }
            }
            assertTrue(inSeg.containsKey(p + "bulk0"), "segment iteration at " + version);
         }

         // Unknown cache, then other caches through the same manager.
         assertNull(rcm.getCache("no-such-cache"), "getCache(unknown) at " + version);
         RemoteCache<String, String> work = rcm.getCache("work");
         work.put(p + "w", "w");
         assertEquals("w", work.get(p + "w"));
         assertNull(c.get(p + "w"), "caches are separate at " + version);
      } finally {
         rcm.stop();
      }
   }
}
