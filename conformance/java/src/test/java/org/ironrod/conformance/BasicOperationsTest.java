package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.infinispan.client.hotrod.Flag;
import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.VersionedValue;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Single-key operations, flags, versioned operations, bulk operations, cache lookup. */
class BasicOperationsTest {
   static final Ironrod.Managers MANAGERS = new Ironrod.Managers();

   @AfterAll
   static void close() {
      MANAGERS.close();
   }

   static java.util.stream.Stream<ClientIntelligence> intelligences() {
      return Ironrod.intelligences();
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void putGetRemoveReplaceContainsKey(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "default");
      String p = Ironrod.unique("basic");

      assertNull(c.get(p + "k"), "absent key");
      assertFalse(c.containsKey(p + "k"));
      c.put(p + "k", "v1");
      assertEquals("v1", c.get(p + "k"));
      assertTrue(c.containsKey(p + "k"));

      c.put(p + "k", "v2");
      assertEquals("v2", c.get(p + "k"), "put overwrites");

      assertNull(c.replace(p + "absent", "x"), "replace of an absent key does nothing");
      assertFalse(c.containsKey(p + "absent"), "replace must not create the key");
      c.replace(p + "k", "v3");
      assertEquals("v3", c.get(p + "k"));

      assertFalse(c.replace(p + "k", "wrong", "v4"), "replace(k, old, new) with a wrong old value");
      assertEquals("v3", c.get(p + "k"));
      assertTrue(c.replace(p + "k", "v3", "v4"), "replace(k, old, new) with the right old value");
      assertEquals("v4", c.get(p + "k"));

      assertFalse(c.remove(p + "k", "wrong"), "remove(k, v) with a wrong value");
      assertTrue(c.containsKey(p + "k"));
      assertTrue(c.remove(p + "k", "v4"), "remove(k, v) with the right value");
      assertFalse(c.containsKey(p + "k"));

      c.put(p + "k2", "w");
      c.remove(p + "k2");
      assertNull(c.get(p + "k2"));
      assertFalse(c.containsKey(p + "k2"));

      // Non-ASCII keys and values and a value larger than one network buffer round-trip unchanged.
      c.put(p + "ключ-☃", "värde-😀");
      assertEquals("värde-😀", c.get(p + "ключ-☃"));
      String big = "x".repeat(200_000) + "end";
      c.put(p + "big", big);
      assertEquals(big, c.get(p + "big"));
      // An empty value is stored (the client turns empty bytes back into null on read).
      c.put(p + "empty", "");
      assertTrue(c.containsKey(p + "empty"), "an empty value is still an entry");
   }

   /**
    * FORCE_RETURN_VALUE for exactly one call. In 14.0/15.0 {@code withFlags} sets thread-local
    * flags consumed by the next operation, in 16.0 it returns a decorated cache; calling it per
    * operation (as Keycloak does) is right for both.
    */
   static RemoteCache<String, String> frv(RemoteCache<String, String> c) {
      return c.withFlags(Flag.FORCE_RETURN_VALUE);
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void forceReturnValueReturnsPrevious(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "actionTokens");
      String k = Ironrod.unique("frv") + "k";

      assertNull(frv(c).put(k, "a"), "put of a new key returns null");
      assertEquals("a", frv(c).put(k, "b"), "put returns the previous value");
      assertEquals("b", frv(c).putIfAbsent(k, "c"), "putIfAbsent on a present key returns the current value");
      assertEquals("b", c.get(k), "putIfAbsent on a present key must not write");
      assertEquals("b", frv(c).replace(k, "d"), "replace returns the previous value");
      assertNull(frv(c).replace(k + "-absent", "x"), "replace of an absent key returns null");
      assertEquals("d", frv(c).remove(k), "remove returns the removed value");
      assertNull(frv(c).remove(k), "remove of an absent key returns null");
      assertNull(frv(c).putIfAbsent(k, "e"), "putIfAbsent on an absent key returns null");
      assertEquals("e", c.get(k));

      // Without the flag the client asks for no previous value; Keycloak's "work" cache relies on
      // putIfAbsent still being refused on a present key.
      assertNull(c.put(k, "f"), "without FORCE_RETURN_VALUE put returns null");
      assertEquals("f", c.get(k));
      c.putIfAbsent(k, "g");
      assertEquals("f", c.get(k), "putIfAbsent without the flag must not overwrite");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void versionedOperations(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "authenticationSessions");
      String k = Ironrod.unique("ver") + "k";

      assertNull(c.getWithMetadata(k), "getWithMetadata of an absent key");
      c.put(k, "v0");
      MetadataValue<String> m0 = c.getWithMetadata(k);
      assertNotNull(m0);
      assertEquals("v0", m0.getValue());
      VersionedValue<String> vv = c.getWithMetadata(k);
      assertEquals(m0.getVersion(), vv.getVersion(), "version is stable without writes");

      assertFalse(c.replaceWithVersion(k, "bad", m0.getVersion() + 1000), "stale version refused");
      assertEquals("v0", c.get(k));
      assertTrue(c.replaceWithVersion(k, "v1", m0.getVersion()), "current version accepted");
      MetadataValue<String> m1 = c.getWithMetadata(k);
      assertEquals("v1", m1.getValue());
      assertNotEquals(m0.getVersion(), m1.getVersion(), "a write changes the version");
      assertFalse(c.replaceWithVersion(k, "v2", m0.getVersion()), "the old version is now stale");

      c.put(k, "v2");
      MetadataValue<String> m2 = c.getWithMetadata(k);
      assertNotEquals(m1.getVersion(), m2.getVersion(), "a plain put changes the version too");

      assertTrue(c.replaceWithVersion(k, "v3", m2.getVersion(), 600, 300),
            "replaceWithVersion with lifespan/maxIdle (seconds), as Keycloak's replace loop does");
      MetadataValue<String> m3 = c.getWithMetadata(k);
      assertEquals("v3", m3.getValue());
      assertEquals(600, m3.getLifespan());
      assertEquals(300, m3.getMaxIdle());

      assertFalse(c.removeWithVersion(k, m2.getVersion()), "remove with a stale version refused");
      assertTrue(c.containsKey(k));
      assertTrue(c.removeWithVersion(k, m3.getVersion()), "remove with the current version");
      assertNull(c.getWithMetadata(k));
      assertFalse(c.removeWithVersion(k, m3.getVersion()), "remove of an absent key");
      assertFalse(c.replaceWithVersion(k, "x", m3.getVersion()), "replace of an absent key");
      assertFalse(c.containsKey(k), "replaceWithVersion must not create the key");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void versionsNeverRepeatAfterRemove(ClientIntelligence intel) {
      // Keycloak compares "version < eventVersion"; a re-created key must not reuse a version an
      // earlier incarnation had, or a stale replaceWithVersion could succeed.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "sessions");
      String k = Ironrod.unique("rever") + "k";
      c.put(k, "a");
      long v1 = c.getWithMetadata(k).getVersion();
      c.remove(k);
      c.put(k, "b");
      long v2 = c.getWithMetadata(k).getVersion();
      assertNotEquals(v1, v2);
      assertFalse(c.replaceWithVersion(k, "stale", v1), "version of the removed incarnation must not match");
      assertEquals("b", c.get(k));

      // The same after a clear of the whole cache (Keycloak clears caches on migration).
      RemoteCache<String, String> scratch = MANAGERS.cache(intel, "offlineClientSessions");
      scratch.put(k, "c");
      long v3 = scratch.getWithMetadata(k).getVersion();
      scratch.clear();
      scratch.put(k, "d");
      long v4 = scratch.getWithMetadata(k).getVersion();
      assertNotEquals(v3, v4, "a version is not reused after clear");
      assertFalse(scratch.replaceWithVersion(k, "stale", v3));
      assertEquals("d", scratch.get(k));
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void putAllGetAll(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, "clientSessions");
      String p = Ironrod.unique("bulk");
      Map<String, String> all = new HashMap<>();
      for (int i = 0; i < 300; i++) all.put(p + i, "value-" + i);
      c.putAll(all);

      Set<String> wanted = new LinkedHashSet<>(all.keySet());
      wanted.add(p + "absent-1");
      wanted.add(p + "absent-2");
      Map<String, String> got = c.getAll(wanted);
      assertEquals(all, got, "getAll returns exactly the present keys with their values");
      for (int i = 0; i < 300; i += 37) assertEquals("value-" + i, c.get(p + i));

      c.putAll(Map.of(p + "exp", "e"), 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES);
      MetadataValue<String> m = c.getWithMetadata(p + "exp");
      assertEquals(3600, m.getLifespan(), "putAll carries lifespan");
      assertEquals(600, m.getMaxIdle(), "putAll carries maxIdle");
      assertTrue(c.getAll(Set.of(p + "none-a", p + "none-b")).isEmpty(), "getAll of absent keys");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void cachesAreIndependent(ClientIntelligence intel) {
      String k = Ironrod.unique("multi") + "k";
      String[] names = Ironrod.KEYCLOAK_CACHES;
      for (String name : names) {
         RemoteCache<String, String> c = MANAGERS.cache(intel, name);
         assertEquals(name, c.getName());
         c.put(k, "in-" + name);
      }
      for (String name : names) {
         RemoteCache<String, String> c = MANAGERS.cache(intel, name);
         assertEquals("in-" + name, c.get(k), "each cache keeps its own value for the same key");
      }
      MANAGERS.<String, String>cache(intel, "sessions").remove(k);
      assertNull(MANAGERS.<String, String>cache(intel, "sessions").get(k));
      assertEquals("in-clientSessions", MANAGERS.<String, String>cache(intel, "clientSessions").get(k),
            "a remove in one cache leaves the others alone");
      assertNull(MANAGERS.<String, String>cache(intel, "default").get(k), "the default cache is separate too");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void cacheNamesAndUnknownCache(ClientIntelligence intel) {
      RemoteCacheManager rcm = MANAGERS.get(intel);
      Set<String> names = rcm.getCacheNames();
      assertNotNull(names);
      for (String n : Ironrod.KEYCLOAK_CACHES) assertTrue(names.contains(n), "getCacheNames lacks " + n + ": " + names);
      assertTrue(names.contains("default"), "getCacheNames lacks default: " + names);
      assertFalse(names.contains("no-such-cache"));

      assertNull(rcm.getCache("no-such-cache-" + intel), "getCache of an unknown cache returns null");
      // The connection used for the failed lookup must still work afterwards.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "work");
      String k = Ironrod.unique("after-unknown") + "k";
      c.put(k, "ok");
      assertEquals("ok", c.get(k));
      assertNotNull(rcm.getCache("___protobuf_metadata"), "the protobuf metadata cache exists");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void protobufMetadataCacheStoresSchemaText(ClientIntelligence intel) {
      // Keycloak 26 uploads its schema: getWithMetadata, putIfAbsent, replaceWithVersion.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "___protobuf_metadata");
      String file = Ironrod.unique("schema") + "test.proto";
      String v1 = "syntax = \"proto3\";\npackage ironrod;\nmessage A { string x = 1; }\n";
      String v2 = v1 + "message B { int32 y = 1; }\n";
      assertNull(c.getWithMetadata(file));
      assertNull(frv(c).putIfAbsent(file, v1));
      MetadataValue<String> m = c.getWithMetadata(file);
      assertEquals(v1, m.getValue());
      assertTrue(c.replaceWithVersion(file, v2, m.getVersion()));
      assertEquals(v2, c.get(file));
      assertNull(c.get(".errors"), "no schema errors reported");
      assertNull(c.get(file + ".errors"));
      assertTrue(c.remove(file, v2));
   }
}
