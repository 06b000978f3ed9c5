package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.infinispan.client.hotrod.Flag;
import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Keycloak's concurrent patterns: optimistic replace loops, single-use tokens, a busy pool. */
class ConcurrencyTest {
   static final Ironrod.Managers MANAGERS = new Ironrod.Managers();

   @AfterAll
   static void close() {
      MANAGERS.close();
   }

   static java.util.stream.Stream<ClientIntelligence> intelligences() {
      return Ironrod.intelligences();
   }

   /** Runs the tasks on their own threads, all released at once, and returns their results. */
   static <T> List<T> race(List<Callable<T>> tasks, int timeoutSeconds) throws Exception {
      ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
      CountDownLatch go = new CountDownLatch(1);
      try {
         List<Future<T>> futures = new ArrayList<>();
         for (Callable<T> t : tasks) {
            futures.add(pool.submit(() -> {
               go.await();
               return t.call();
            }));
         }
         go.countDown();
         long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
         List<T> out = new ArrayList<>();
         for (Future<T> f : futures) {
            try {
               out.add(f.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS));
            } catch (ExecutionException e) {
               throw new AssertionError("a concurrent caller failed: " + e.getCause(), e.getCause());
            }
         }
         return out;
      } finally {
         pool.shutdownNow();
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void replaceWithVersionLoopLosesNoUpdate(ClientIntelligence intel) throws Exception {
      // Keycloak's RemoteCacheInvoker / change-log replace: getWithMetadata, compute, then
      // replaceWithVersion(lifespan, maxIdle); on false, read again and retry.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "sessions");
      String key = Ironrod.unique("counter") + "k";
      int threads = 8;
      int perThread = 150;
      c.put(key, "0", 10, TimeUnit.MINUTES, 5, TimeUnit.MINUTES);
      AtomicLong retries = new AtomicLong();

      List<Callable<Integer>> tasks = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
         tasks.add(() -> {
            for (int i = 0; i < perThread; i++) {
               for (int attempt = 0; ; attempt++) {
                  if (attempt > 10_000) throw new AssertionError("replace loop starved");
                  MetadataValue<String> mv = c.getWithMetadata(key);
                  assertNotNull(mv, "the counter entry vanished");
                  String next = Long.toString(Long.parseLong(mv.getValue()) + 1);
                  if (c.replaceWithVersion(key, next, mv.getVersion(), 600_000, TimeUnit.MILLISECONDS,
                        300_000, TimeUnit.MILLISECONDS)) {
                     break;
                  }
                  retries.incrementAndGet();
               }
            }
            return perThread;
         });
      }
      race(tasks, 80);

      MetadataValue<String> end = c.getWithMetadata(key);
      assertEquals(Integer.toString(threads * perThread), end.getValue(),
            "every successful replaceWithVersion must count exactly once (retries: " + retries + ")");
      assertEquals(600, end.getLifespan(), "lifespan of the last replace");
      assertEquals(300, end.getMaxIdle(), "maxIdle of the last replace");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void putIfAbsentSingleUseTokenHasExactlyOneWinner(ClientIntelligence intel) throws Exception {
      // Keycloak's single-use action tokens: putIfAbsent with FORCE_RETURN_VALUE; null means "I
      // used it first", a value means "already used".
      RemoteCache<String, String> c = MANAGERS.cache(intel, "actionTokens");
      String prefix = Ironrod.unique("token");
      int callers = 16;
      for (int round = 0; round < 20; round++) {
         String token = prefix + round;
         List<Callable<String[]>> tasks = new ArrayList<>();
         for (int i = 0; i < callers; i++) {
            String mine = "caller-" + i;
            tasks.add(() -> new String[]{mine,
                  c.withFlags(Flag.FORCE_RETURN_VALUE).putIfAbsent(token, mine, 60, TimeUnit.SECONDS)});
         }
         List<String[]> results = race(tasks, 30);
         List<String> winners = new ArrayList<>();
         for (String[] r : results) if (r[1] == null) winners.add(r[0]);
         assertEquals(1, winners.size(), "round " + round + ": exactly one caller gets null, got " + winners);
         String winner = winners.get(0);
         for (String[] r : results) {
            if (r[1] != null) assertEquals(winner, r[1], "round " + round + ": losers see the winner's value");
         }
         assertEquals(winner, c.get(token), "the stored value is the winner's");
         assertEquals(60, c.getWithMetadata(token).getLifespan(), "the winner's lifespan");
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void computeIfPresentFromManyThreads(ClientIntelligence intel) throws Exception {
      // The client implements computeIfPresent with getWithMetadata + replaceWithVersion, which
      // Keycloak's change-log transaction uses on conflicts.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "loginFailures");
      String key = Ironrod.unique("compute") + "k";
      c.put(key, "0");
      List<Callable<Integer>> tasks = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
         tasks.add(() -> {
            for (int i = 0; i < 50; i++) {
               c.computeIfPresent(key, (k, v) -> Long.toString(Long.parseLong(v) + 1));
            }
            return 50;
         });
      }
      race(tasks, 80);
      assertEquals("400", c.get(key), "computeIfPresent loses no update");
      assertNull(c.computeIfPresent(key + "-absent", (k, v) -> "x"), "computeIfPresent of an absent key");
      assertFalse(c.containsKey(key + "-absent"));
      c.computeIfPresent(key, (k, v) -> null);
      assertFalse(c.containsKey(key), "computeIfPresent returning null removes the entry");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void manyAsyncOperationsInFlight(ClientIntelligence intel) throws Exception {
      // Keycloak 26 issues async operations; the 16.0 client pipelines them on few connections and
      // matches responses by message id, so they may complete in any order.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "authenticationSessions");
      String p = Ironrod.unique("async");
      int n = 2_000;
      List<CompletableFuture<String>> puts = new ArrayList<>();
      for (int i = 0; i < n; i++) puts.add(c.putAsync(p + i, "v" + i, 10, TimeUnit.MINUTES));
      CompletableFuture.allOf(puts.toArray(new CompletableFuture[0])).get(60, TimeUnit.SECONDS);

      List<CompletableFuture<String>> gets = new ArrayList<>();
      for (int i = 0; i < n; i++) gets.add(c.getAsync(p + i));
      for (int i = 0; i < n; i++) assertEquals("v" + i, gets.get(i).get(30, TimeUnit.SECONDS), "async get " + i);

      List<CompletableFuture<MetadataValue<String>>> metas = new ArrayList<>();
      for (int i = 0; i < n; i += 4) metas.add(c.getWithMetadataAsync(p + i));
      List<CompletableFuture<Boolean>> replaces = new ArrayList<>();
      for (int j = 0; j < metas.size(); j++) {
         MetadataValue<String> mv = metas.get(j).get(30, TimeUnit.SECONDS);
         replaces.add(c.replaceWithVersionAsync(p + (j * 4), "r" + (j * 4), mv.getVersion()));
      }
      for (CompletableFuture<Boolean> r : replaces) assertTrue(r.get(30, TimeUnit.SECONDS));

      List<CompletableFuture<String>> removes = new ArrayList<>();
      for (int i = 1; i < n; i += 4) removes.add(c.withFlags(Flag.FORCE_RETURN_VALUE).removeAsync(p + i));
      for (int j = 0; j < removes.size(); j++) {
         int i = 1 + j * 4;
         assertEquals("v" + i, removes.get(j).get(30, TimeUnit.SECONDS), "async remove returns value of " + i);
      }
      for (int i = 0; i < n; i++) {
         String expected = i % 4 == 0 ? "r" + i : i % 4 == 1 ? null : "v" + i;
         assertEquals(expected, c.get(p + i), "final value of " + i);
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void singleUseRemoveWithVersionHasExactlyOneWinner(ClientIntelligence intel) throws Exception {
      // Keycloak's single-use object "remove": getWithMetadata, then removeWithVersion.
      RemoteCache<String, String> c = MANAGERS.cache(intel, "actionTokens");
      String prefix = Ironrod.unique("once");
      for (int round = 0; round < 10; round++) {
         String key = prefix + round;
         c.put(key, "payload", 60, TimeUnit.SECONDS);
         List<Callable<Boolean>> tasks = new ArrayList<>();
         for (int i = 0; i < 16; i++) {
            tasks.add(() -> {
               MetadataValue<String> mv = c.getWithMetadata(key);
               return mv != null && c.removeWithVersion(key, mv.getVersion());
            });
         }
         long wins = race(tasks, 30).stream().filter(b -> b).count();
         assertEquals(1, wins, "round " + round + ": exactly one removeWithVersion succeeds");
         assertNull(c.get(key));
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void eightManagersEachWithItsOwnPool(ClientIntelligence intel) throws Exception {
      // Keycloak 17-24 remote stores: one RemoteCacheManager (and pool) per Keycloak cache.
      List<RemoteCacheManager> managers = new ArrayList<>();
      try {
         String k = Ironrod.unique("own-pool") + "k";
         List<Callable<Integer>> tasks = new ArrayList<>();
         for (String name : Ironrod.KEYCLOAK_CACHES) {
            RemoteCacheManager rcm = Ironrod.manager(intel);
            managers.add(rcm);
            RemoteCache<String, String> c = rcm.getCache(name);
            assertNotNull(c, name);
            for (int t = 0; t < 4; t++) {
               int tt = t;
               tasks.add(() -> {
                  for (int i = 0; i < 100; i++) {
                     c.put(k + tt, name + i);
                     assertEquals(name + i, c.get(k + tt));
                  }
                  return 100;
               });
            }
         }
         race(tasks, 80);
         for (RemoteCacheManager rcm : managers) {
            for (String name : Ironrod.KEYCLOAK_CACHES) {
               assertEquals(name + 99, rcm.<String, String>getCache(name).get(k + 3), "last write in " + name);
            }
         }
      } finally {
         for (RemoteCacheManager rcm : managers) rcm.stop();
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void poolOfSixteenUnderLoad(ClientIntelligence intel) throws Exception {
      RemoteCacheManager rcm = MANAGERS.get(intel);
      RemoteCache<String, String> c = MANAGERS.cache(intel, "clientSessions");
      String prefix = Ironrod.unique("pool");
      int threads = 32;
      int ops = 200;
      long retriesBefore = rcm.getRetries();
      List<Callable<Integer>> tasks = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
         int tt = t;
         tasks.add(() -> {
            int checked = 0;
            for (int i = 0; i < ops; i++) {
               String k = prefix + tt + "-" + (i % 20);
               String v = tt + ":" + i;
               c.put(k, v);
               String got = c.get(k);
               assertEquals(v, got, "a thread reads its own write (own key space)");
               if (i % 5 == 0) {
                  assertTrue(c.containsKey(k));
                  assertEquals(v, c.withFlags(Flag.FORCE_RETURN_VALUE).remove(k));
               }
               checked++;
            }
            return checked;
         });
      }
      List<Integer> done = race(tasks, 80);
      assertEquals(threads * ops, done.stream().mapToInt(Integer::intValue).sum());
      assertEquals(retriesBefore, rcm.getRetries(), "no operation needed a retry");
      int connections = rcm.getConnectionCount();
      assertTrue(connections <= 16, "the pool stays within maxActive 16, has " + connections);
      if (Ironrod.clientMajor() < 16) {
         // 14.0/15.0 use one connection per in-flight request; 16.0 pipelines on fewer.
         assertTrue(connections > 1, "a busy pool opens several connections, has " + connections);
      }
      for (int t = 0; t < threads; t++) {
         // i = ops-1 was the last write of key (ops-1) % 20; it was not removed (199 % 5 != 0).
         assertEquals(t + ":" + (ops - 1), c.get(prefix + t + "-" + ((ops - 1) % 20)));
      }
   }
}
