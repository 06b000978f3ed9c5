package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryCreated;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryExpired;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryModified;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryRemoved;
import org.infinispan.client.hotrod.annotation.ClientListener;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.event.ClientCacheEntryCreatedEvent;
import org.infinispan.client.hotrod.event.ClientCacheEntryExpiredEvent;
import org.infinispan.client.hotrod.event.ClientCacheEntryModifiedEvent;
import org.infinispan.client.hotrod.event.ClientCacheEntryRemovedEvent;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Client listeners as Keycloak uses them: a listener on one RemoteCacheManager follows writes made
 * through other managers; on created/modified it reads the entry with getWithMetadata (off the
 * event thread, as Keycloak does) and checks the version is at least the event's; on removed it
 * drops the key. Also includeCurrentState and expired events from a lifespan.
 */
class ClientListenerTest {
   private static final String CACHE = "actionTokens";
   private static final List<RemoteCacheManager> MANAGERS = new CopyOnWriteArrayList<>();

   @AfterAll
   static void close() {
      for (RemoteCacheManager m : MANAGERS) m.stop();
   }

   private static RemoteCache<String, String> cache(ClientIntelligence intel) {
      RemoteCacheManager m = Ironrod.manager(intel);
      MANAGERS.add(m);
      RemoteCache<String, String> c = m.getCache(CACHE);
      assertNotNull(c, "server does not know cache " + CACHE);
      return c;
   }

   static void await(BooleanSupplier cond, String what) throws InterruptedException {
      long end = System.currentTimeMillis() + 15_000;
      while (!cond.getAsBoolean()) {
         if (System.currentTimeMillis() > end) fail("timed out waiting for " + what);
         Thread.sleep(10);
      }
   }

   /** What Keycloak's remote-cache session listener does, reduced to its checks. */
   @ClientListener
   public static class KeycloakLikeListener {
      final String prefix;
      final RemoteCache<String, String> cache;
      final ExecutorService executor = Executors.newSingleThreadExecutor();
      final Map<String, String> local = new ConcurrentHashMap<>();
      final List<String> problems = new CopyOnWriteArrayList<>();
      final Set<String> removed = ConcurrentHashMap.newKeySet();
      volatile int events;

      KeycloakLikeListener(String prefix, RemoteCache<String, String> cache) {
         this.prefix = prefix;
         this.cache = cache;
      }

      @ClientCacheEntryCreated
      public void created(ClientCacheEntryCreatedEvent<String> e) {
         follow(e.getKey(), e.getVersion());
      }

      @ClientCacheEntryModified
      public void modified(ClientCacheEntryModifiedEvent<String> e) {
         follow(e.getKey(), e.getVersion());
      }

      @ClientCacheEntryRemoved
      public void removed(ClientCacheEntryRemovedEvent<String> e) {
         if (!e.getKey().startsWith(prefix)) return;
         executor.submit(() -> {
            local.remove(e.getKey());
            removed.add(e.getKey());
            events++;
         });
      }

      private void follow(String key, long eventVersion) {
         if (!key.startsWith(prefix)) return;
         executor.submit(() -> {
            MetadataValue<String> m = cache.getWithMetadata(key);
            if (m == null) {
               local.remove(key);
            } else if (m.getVersion() < eventVersion) {
               problems.add(key + ": read version " + m.getVersion() + " older than event " + eventVersion);
            } else {
               local.put(key, m.getValue());
            }
            events++;
         });
      }
   }

   @Test
   void keycloakLikeListenerFollowsOtherWriters() throws Exception {
      String p = Ironrod.unique("kc");
      RemoteCache<String, String> listening = cache(ClientIntelligence.BASIC);
      RemoteCache<String, String> w1 = cache(ClientIntelligence.HASH_DISTRIBUTION_AWARE);
      RemoteCache<String, String> w2 = cache(ClientIntelligence.BASIC);
      KeycloakLikeListener l = new KeycloakLikeListener(p, listening);
      listening.addClientListener(l);
      try {
         Map<String, String> expected = new HashMap<>();
         for (int i = 0; i < 50; i++) {
            RemoteCache<String, String> w = i % 2 == 0 ? w1 : w2;
            w.put(p + i, "v" + i);
            expected.put(p + i, "v" + i);
         }
         for (int i = 0; i < 50; i += 3) {
            RemoteCache<String, String> w = i % 2 == 0 ? w2 : w1;
            w.put(p + i, "w" + i);
            expected.put(p + i, "w" + i);
         }
         for (int i = 0; i < 50; i += 5) {
            w1.remove(p + i);
            expected.remove(p + i);
         }
         // 50 created + 17 modified + 10 removed.
         await(() -> l.events >= 77, "77 events (have " + l.events + ")");
         l.executor.shutdown();
         assertTrue(l.executor.awaitTermination(10, TimeUnit.SECONDS));
         assertTrue(l.problems.isEmpty(), l.problems.toString());
         assertEquals(expected, l.local);
         assertEquals(10, l.removed.size());
      } finally {
         listening.removeClientListener(l);
      }
   }

   @ClientListener(includeCurrentState = true)
   public static class StateListener {
      final Set<String> created = ConcurrentHashMap.newKeySet();
      final String prefix;

      StateListener(String prefix) {
         this.prefix = prefix;
      }

      @ClientCacheEntryCreated
      public void created(ClientCacheEntryCreatedEvent<String> e) {
         if (e.getKey().startsWith(prefix)) created.add(e.getKey());
      }
   }

   @Test
   void includeCurrentStateSendsExistingEntries() throws Exception {
      String p = Ironrod.unique("state");
      RemoteCache<String, String> writer = cache(ClientIntelligence.BASIC);
      for (int i = 0; i < 20; i++) writer.put(p + i, "v");
      RemoteCache<String, String> listening = cache(ClientIntelligence.HASH_DISTRIBUTION_AWARE);
      StateListener l = new StateListener(p);
      listening.addClientListener(l);
      try {
         await(() -> l.created.size() >= 20, "20 current-state events");
         writer.put(p + "late", "v");
         await(() -> l.created.contains(p + "late"), "a live event after the state");
         assertEquals(21, l.created.size());
      } finally {
         listening.removeClientListener(l);
      }
   }

   @ClientListener
   public static class ExpiryListener {
      final Set<String> expired = ConcurrentHashMap.newKeySet();
      final String prefix;

      ExpiryListener(String prefix) {
         this.prefix = prefix;
      }

      @ClientCacheEntryExpired
      public void expired(ClientCacheEntryExpiredEvent<String> e) {
         if (e.getKey().startsWith(prefix)) expired.add(e.getKey());
      }
   }

   @Test
   void lifespanExpiryIsNotified() throws Exception {
      String p = Ironrod.unique("exp");
      RemoteCache<String, String> listening = cache(ClientIntelligence.BASIC);
      RemoteCache<String, String> writer = cache(ClientIntelligence.BASIC);
      ExpiryListener l = new ExpiryListener(p);
      listening.addClientListener(l);
      try {
         writer.put(p + "read", "v", 1, TimeUnit.SECONDS);
         writer.put(p + "reaped", "v", 1, TimeUnit.SECONDS);
         Thread.sleep(1_300);
         // Expiry found on access is notified (the reaper's is covered by the server tests).
         assertEquals(null, writer.get(p + "read"));
         assertEquals(null, writer.get(p + "reaped"));
         await(() -> l.expired.size() == 2, "two expired events (have " + l.expired + ")");
      } finally {
         listening.removeClientListener(l);
      }
   }
}
