package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.client.hotrod.configuration.ExhaustedAction;
import org.infinispan.client.hotrod.configuration.NearCacheMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Invalidated near caches: the client keeps read entries locally and drops them when the server
 * reports a modification, removal or expiry through its listener; with a bloom filter the client
 * registers through ADD_BLOOM_FILTER_NEAR_CACHE_LISTENER and sends UPDATE_BLOOM_FILTER.
 */
class NearCacheTest {
   private static final String CACHE = "loginFailures";
   private static final List<RemoteCacheManager> MANAGERS = new CopyOnWriteArrayList<>();

   @AfterAll
   static void close() {
      for (RemoteCacheManager m : MANAGERS) m.stop();
   }

   private static RemoteCache<String, String> near(boolean bloom) {
      ConfigurationBuilder b = Ironrod.config(ClientIntelligence.BASIC, ProtocolVersion.PROTOCOL_VERSION_AUTO);
      if (bloom) {
         // The client requires one connection that callers wait for when it uses a bloom filter.
         b.connectionPool().maxActive(1).exhaustedAction(ExhaustedAction.WAIT);
      }
      b.remoteCache(CACHE).nearCacheMode(NearCacheMode.INVALIDATED).nearCacheMaxEntries(100)
            .nearCacheUseBloomFilter(bloom);
      RemoteCacheManager m = new RemoteCacheManager(b.build());
      MANAGERS.add(m);
      return m.getCache(CACHE);
   }

   private static RemoteCache<String, String> plain() {
      RemoteCacheManager m = Ironrod.manager(ClientIntelligence.BASIC);
      MANAGERS.add(m);
      return m.getCache(CACHE);
   }

   static void awaitValue(RemoteCache<String, String> c, String key, String expected) throws InterruptedException {
      long end = System.currentTimeMillis() + 10_000;
      String v;
      while (!java.util.Objects.equals(v = c.get(key), expected)) {
         if (System.currentTimeMillis() > end) fail("near cache still returns " + v + " for " + key + ", expected " + expected);
         Thread.sleep(20);
      }
   }

   @ParameterizedTest
   @ValueSource(booleans = {false, true})
   void remoteWritesInvalidateTheNearCache(boolean bloom) throws Exception {
      String k = Ironrod.unique("near") + bloom;
      RemoteCache<String, String> writer = plain();
      writer.put(k, "v1");
      RemoteCache<String, String> near = near(bloom);
      assertEquals("v1", near.get(k));
      assertEquals("v1", near.get(k), "served from the near cache");
      writer.put(k, "v2");
      awaitValue(near, k, "v2");
      writer.remove(k);
      awaitValue(near, k, null);
      near.put(k, "v3");
      assertEquals("v3", near.get(k));
      writer.put(k, "v4");
      awaitValue(near, k, "v4");
   }
}
