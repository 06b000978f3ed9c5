package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.infinispan.client.hotrod.CacheTopologyInfo;
import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.ServerStatistics;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.commons.util.CloseableIterator;
import org.infinispan.commons.util.CloseableIteratorSet;
import org.infinispan.commons.util.IntSets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Iteration (Keycloak's session pre-load and realm-wide removals), size and clear. These tests
 * own the {@code offlineClientSessions} cache and clear it first.
 */
class IterationTest {
   static final Ironrod.Managers MANAGERS = new Ironrod.Managers();
   static final String CACHE = "offlineClientSessions";
   static final int ENTRIES = 600;

   @AfterAll
   static void close() {
      MANAGERS.close();
   }

   static java.util.stream.Stream<ClientIntelligence> intelligences() {
      return Ironrod.intelligences();
   }

   /** Clears the cache and fills it with ENTRIES entries under a fresh prefix. */
   static Map<String, String> fill(RemoteCache<String, String> c, String what) {
      c.clear();
      assertEquals(0, c.size(), "size after clear");
      String p = Ironrod.unique(what);
      Map<String, String> all = new HashMap<>();
      for (int i = 0; i < ENTRIES; i++) all.put(p + i, "v" + i);
      c.putAll(all);
      return all;
   }

   /** Drains an iterator, failing on a key seen twice. */
   static Map<String, String> drain(CloseableIterator<Map.Entry<Object, Object>> it) {
      Map<String, String> seen = new HashMap<>();
      try (it) {
         while (it.hasNext()) {
            Map.Entry<Object, Object> e = it.next();
            String prev = seen.put((String) e.getKey(), (String) e.getValue());
            assertEquals(null, prev, "key returned twice: " + e.getKey());
         }
      }
      return seen;
   }

   /**
    * Number of segments: from the client's topology when hash-aware, otherwise from a hash-aware
    * client (a BASIC client receives no topology).
    */
   static int numSegments(ClientIntelligence intel, RemoteCache<String, String> c) {
      CacheTopologyInfo info = c.getCacheTopologyInfo();
      if (intel == ClientIntelligence.HASH_DISTRIBUTION_AWARE) {
         assertNotNull(info, "a hash-aware client has topology info");
         assertNotNull(info.getNumSegments());
         assertTrue(info.getNumSegments() > 0, "segments: " + info.getNumSegments());
         return info.getNumSegments();
      }
      RemoteCache<String, String> hashAware = MANAGERS.cache(ClientIntelligence.HASH_DISTRIBUTION_AWARE, c.getName());
      hashAware.containsKey("warm-up"); // the topology arrives with the first response
      return hashAware.getCacheTopologyInfo().getNumSegments();
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void retrieveEntriesReturnsEachEntryOnce(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      Map<String, String> all = fill(c, "all");
      assertEquals(ENTRIES, c.size());
      for (int batch : new int[]{1_000, 37, 1}) {
         if (batch == 1) {
            // batch 1 over 600 entries is slow-ish; use a subset of the cache by closing early.
            try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 1)) {
               for (int i = 0; i < 25; i++) {
                  assertTrue(it.hasNext());
                  Map.Entry<Object, Object> e = it.next();
                  assertEquals(all.get(e.getKey()), e.getValue());
               }
            }
            continue;
         }
         Map<String, String> seen = drain(c.retrieveEntries(null, batch));
         assertEquals(all, seen, "batch " + batch + ": every entry exactly once, nothing else");
      }
      // Closing early and iterating again works (the server released the first iteration).
      assertEquals(all, drain(c.retrieveEntries(null, 64)));
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void retrieveEntriesBySegment(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      Map<String, String> all = fill(c, "seg");
      int n = numSegments(intel, c);

      if (intel == ClientIntelligence.HASH_DISTRIBUTION_AWARE) {
         // The client routes by its own consistent hash; check it agrees with Infinispan's
         // murmur3 segment arithmetic, which the server must use to filter by segment.
         RemoteCacheManager rcm = MANAGERS.get(intel);
         Object ch = Ironrod.clientConsistentHash(rcm, CACHE);
         assertNotNull(ch, "hash-aware client has a consistent hash for " + CACHE);
         for (String k : all.keySet()) {
            assertEquals(Ironrod.segmentOf(k, n), Ironrod.clientSegmentOf(ch, k), "segment of " + k);
         }
         Set<Integer> owned = new TreeSet<>();
         c.getCacheTopologyInfo().getSegmentsPerServer().values().forEach(owned::addAll);
         assertEquals(n, owned.size(), "one server owns every segment");
      }

      Map<Integer, Map<String, String>> bySegment = new HashMap<>();
      for (Map.Entry<String, String> e : all.entrySet()) {
         bySegment.computeIfAbsent(Ironrod.segmentOf(e.getKey(), n), s -> new HashMap<>()).put(e.getKey(), e.getValue());
      }
      assertTrue(bySegment.size() > 1, "test keys spread over several segments");

      // Every other populated segment, plus one segment none of our keys live in (if any).
      List<Integer> populated = new ArrayList<>(new TreeSet<>(bySegment.keySet()));
      Set<Integer> chosen = new HashSet<>();
      for (int i = 0; i < populated.size(); i += 2) chosen.add(populated.get(i));
      for (int s = 0; s < n; s++) if (!bySegment.containsKey(s)) { chosen.add(s); break; }
      Map<String, String> expected = new HashMap<>();
      for (int s : chosen) expected.putAll(bySegment.getOrDefault(s, Map.of()));

      Map<String, String> seen = drain(c.retrieveEntries(null, chosen, 50));
      for (String k : seen.keySet()) {
         assertTrue(chosen.contains(Ironrod.segmentOf(k, n)), "entry " + k + " of segment "
               + Ironrod.segmentOf(k, n) + " is outside the requested " + chosen);
      }
      assertEquals(expected, seen, "exactly the entries of segments " + chosen);

      // Keycloak's loader walks all segments in chunks; the union is the whole cache, no overlap.
      Map<String, String> union = new HashMap<>();
      int chunk = Math.max(1, n / 4);
      for (int from = 0; from < n; from += chunk) {
         Set<Integer> part = new HashSet<>();
         for (int s = from; s < Math.min(n, from + chunk); s++) part.add(s);
         for (Map.Entry<String, String> e : drain(c.retrieveEntries(null, part, 64)).entrySet()) {
            assertEquals(null, union.put(e.getKey(), e.getValue()), "key in two segment chunks: " + e.getKey());
         }
      }
      assertEquals(all, union, "segment chunks cover the cache");

      // A single segment.
      int one = populated.get(populated.size() - 1);
      assertEquals(bySegment.get(one), drain(c.retrieveEntries(null, Set.of(one), 10)), "segment " + one);

      // The segment-filtered key set.
      Set<String> keys = new HashSet<>();
      try (CloseableIterator<String> it = c.keySet(IntSets.from(chosen)).iterator()) {
         while (it.hasNext()) assertTrue(keys.add(it.next()));
      }
      assertEquals(expected.keySet(), keys, "keySet(segments)");
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void iterationWhileOthersWrite(ClientIntelligence intel) throws Exception {
      // Keycloak pre-loads sessions while nodes keep writing them: every entry that exists for the
      // whole iteration and is not modified must come back exactly once; nothing comes back twice.
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      Map<String, String> all = fill(c, "live");
      java.util.List<String> keys = new ArrayList<>(all.keySet());
      Set<String> removable = new HashSet<>(keys.subList(0, 150));
      Map<String, String> stable = new HashMap<>(all);
      stable.keySet().removeAll(removable);
      String added = Ironrod.unique("added");

      ExecutorService writer = Executors.newSingleThreadExecutor();
      try {
         java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);
         Future<Integer> writes = writer.submit(() -> {
            started.await();
            int n = 0;
            for (String k : removable) {
               c.remove(k);
               c.put(added + n, "new");
               n++;
            }
            return n;
         });
         Map<String, String> seen = new HashMap<>();
         try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 10)) {
            int i = 0;
            while (it.hasNext()) {
               Map.Entry<Object, Object> e = it.next();
               assertEquals(null, seen.put((String) e.getKey(), (String) e.getValue()), "returned twice: " + e.getKey());
               if (++i == 20) started.countDown();
            }
         }
         started.countDown();
         assertEquals(150, writes.get(60, TimeUnit.SECONDS));
         for (Map.Entry<String, String> e : stable.entrySet()) {
            assertEquals(e.getValue(), seen.get(e.getKey()), "untouched entry " + e.getKey() + " returned exactly once");
         }
         for (String k : seen.keySet()) {
            assertTrue(all.containsKey(k) || k.startsWith(added), "unexpected key " + k);
         }
         assertEquals(ENTRIES, c.size(), "150 removed, 150 added");
      } finally {
         writer.shutdownNow();
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void parallelSegmentIteration(ClientIntelligence intel) throws Exception {
      // Keycloak's session pre-load iterates disjoint segment sets from several workers at once.
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      Map<String, String> all = fill(c, "par");
      int n = numSegments(intel, c);
      int workers = 4;
      ExecutorService pool = Executors.newFixedThreadPool(workers);
      try {
         List<Future<Map<String, String>>> parts = new ArrayList<>();
         for (int w = 0; w < workers; w++) {
            Set<Integer> mine = new HashSet<>();
            for (int s = w; s < n; s += workers) mine.add(s);
            parts.add(pool.submit(() -> {
               Map<String, String> got = drain(c.retrieveEntries(null, mine, 16));
               for (String k : got.keySet()) {
                  assertTrue(mine.contains(Ironrod.segmentOf(k, n)), k + " outside the worker's segments");
               }
               return got;
            }));
         }
         Map<String, String> union = new HashMap<>();
         for (Future<Map<String, String>> f : parts) {
            for (Map.Entry<String, String> e : f.get(60, TimeUnit.SECONDS).entrySet()) {
               assertEquals(null, union.put(e.getKey(), e.getValue()), "returned to two workers: " + e.getKey());
            }
         }
         assertEquals(all, union, "the workers together see every entry once");
      } finally {
         pool.shutdownNow();
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void retrieveEntriesWithMetadata(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      c.clear();
      String p = Ironrod.unique("meta");
      for (int i = 0; i < 50; i++) c.put(p + i, "v" + i, 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES);
      c.put(p + "immortal", "x");
      Map<String, MetadataValue<Object>> seen = new HashMap<>();
      try (CloseableIterator<Map.Entry<Object, MetadataValue<Object>>> it = c.retrieveEntriesWithMetadata(null, 7)) {
         while (it.hasNext()) {
            Map.Entry<Object, MetadataValue<Object>> e = it.next();
            assertEquals(null, seen.put((String) e.getKey(), e.getValue()), "twice: " + e.getKey());
         }
      }
      assertEquals(51, seen.size());
      for (int i = 0; i < 50; i++) {
         MetadataValue<Object> m = seen.get(p + i);
         assertNotNull(m, "missing " + p + i);
         assertEquals("v" + i, m.getValue());
         assertEquals(3600, m.getLifespan());
         assertEquals(600, m.getMaxIdle());
         assertTrue(m.getCreated() > 0);
         assertEquals(c.getWithMetadata(p + i).getVersion(), m.getVersion(), "iteration reports the entry version");
      }
      assertEquals(-1, seen.get(p + "immortal").getLifespan());
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void keySetEntrySetValues(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      Map<String, String> all = fill(c, "sets");
      CloseableIteratorSet<String> keySet = c.keySet();
      assertEquals(ENTRIES, keySet.size());
      Set<String> keys = new HashSet<>();
      try (CloseableIterator<String> it = keySet.iterator()) {
         while (it.hasNext()) assertTrue(keys.add(it.next()), "duplicate key");
      }
      assertEquals(all.keySet(), keys);

      Map<String, String> entries = new HashMap<>();
      try (CloseableIterator<Map.Entry<String, String>> it = c.entrySet().iterator()) {
         while (it.hasNext()) {
            Map.Entry<String, String> e = it.next();
            assertEquals(null, entries.put(e.getKey(), e.getValue()));
         }
      }
      assertEquals(all, entries);

      List<String> values = new ArrayList<>();
      try (CloseableIterator<String> it = c.values().iterator()) {
         while (it.hasNext()) values.add(it.next());
      }
      assertEquals(new TreeSet<>(all.values()), new TreeSet<>(values));
      assertEquals(ENTRIES, values.size());

      // Keycloak's realm removal without queries: stream the entries, remove the matching keys.
      String victim = all.keySet().iterator().next();
      long removed;
      try (var stream = c.entrySet().stream()) {
         removed = stream.filter(e -> e.getValue().endsWith("7")).map(Map.Entry::getKey).peek(c::remove).count();
      }
      assertEquals(all.values().stream().filter(v -> v.endsWith("7")).count(), removed);
      assertEquals(ENTRIES - removed, c.size());
      assertEquals(!all.get(victim).endsWith("7"), c.containsKey(victim));
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void sizeIsEmptyClear(ClientIntelligence intel) {
      RemoteCache<String, String> c = MANAGERS.cache(intel, CACHE);
      c.clear();
      assertEquals(0, c.size());
      assertTrue(c.isEmpty());
      String p = Ironrod.unique("size");
      for (int i = 0; i < 25; i++) c.put(p + i, "v");
      assertEquals(25, c.size());
      assertFalse(c.isEmpty());
      c.put(p + 0, "again");
      assertEquals(25, c.size(), "overwrite does not change size");
      c.remove(p + 0);
      assertEquals(24, c.size());
      Map<String, String> stats = c.serverStatistics().getStatsMap();
      assertEquals("24", stats.get(ServerStatistics.CURRENT_NR_OF_ENTRIES), "STATS entries: " + stats);
      assertEquals("24", stats.get(ServerStatistics.APPROXIMATE_ENTRIES), "STATS approximate entries: " + stats);

      // clear only touches this cache.
      RemoteCache<String, String> other = MANAGERS.cache(intel, "offlineSessions");
      String ok = Ironrod.unique("survivor") + "k";
      other.put(ok, "stays");
      c.clear();
      assertEquals(0, c.size());
      assertTrue(c.isEmpty());
      assertEquals(null, c.get(p + 1));
      assertEquals("stays", other.get(ok), "clear of one cache leaves another alone");
      c.put(p + "after", "v");
      assertEquals(1, c.size(), "usable after clear");

      // Expired entries are not counted.
      c.put(p + "short1", "v", 1, TimeUnit.SECONDS);
      c.put(p + "short2", "v", -1, TimeUnit.SECONDS, 1, TimeUnit.SECONDS);
      assertEquals(3, c.size());
      try {
         Thread.sleep(2_100);
      } catch (InterruptedException e) {
         throw new AssertionError(e);
      }
      assertEquals(1, c.size(), "size excludes expired entries");
      assertEquals(Set.of(p + "after"), Ironrod.setOf(c.keySet()), "iteration excludes expired entries");
   }
}
