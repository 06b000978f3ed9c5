package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryCreated;
import org.infinispan.client.hotrod.annotation.ClientCacheFailover;
import org.infinispan.client.hotrod.annotation.ClientListener;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.client.hotrod.event.ClientCacheEntryCreatedEvent;
import org.infinispan.client.hotrod.event.ClientCacheFailoverEvent;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A listener that stops keeping up: writers of the cache are first slowed down (their responses
 * wait while the listener's queue is above the high watermark), then, when the queue reaches its
 * maximum, the server closes the listener's connection; the writers stay healthy throughout.
 * Runs its own server (IRONROD_BIN) with small queue bounds so the test stays short.
 */
class SlowListenerTest {
   private static final String HOST = "127.0.0.1";
   private static final String CACHE = "work";
   private static IronrodProcess server;
   private static int port;

   @BeforeAll
   static void startServer() throws Exception {
      server = IronrodProcess.start(IronrodProcess.tempDir("ironrod-java-slow-listener-"),
            "event_queue_high = 4\nevent_queue_low = 2\nevent_queue_max = 16\n");
      port = server.port;
   }

   @AfterAll
   static void stopServer() throws Exception {
      if (server != null) {
         server.close();
         server = null;
      }
   }

   private static RemoteCacheManager manager() {
      ConfigurationBuilder b = new ConfigurationBuilder();
      b.addServer().host(HOST).port(port);
      b.clientIntelligence(ClientIntelligence.BASIC);
      b.version(ProtocolVersion.PROTOCOL_VERSION_AUTO);
      b.marshaller(Ironrod.MARSHALLER);
      b.connectionTimeout(5_000).socketTimeout(30_000);
      b.maxRetries(0);
      return new RemoteCacheManager(b.build());
   }

   /** Sleeps in every created event, on the client's event thread: the client stops reading. */
   @ClientListener
   public static class Sluggish {
      final AtomicInteger created = new AtomicInteger();
      final AtomicInteger failovers = new AtomicInteger();
      volatile boolean slow = true;

      @ClientCacheEntryCreated
      public void created(ClientCacheEntryCreatedEvent<String> e) throws InterruptedException {
         created.incrementAndGet();
         if (slow) Thread.sleep(2_000);
      }

      @ClientCacheFailover
      public void failover(ClientCacheFailoverEvent e) {
         failovers.incrementAndGet();
      }
   }

   @Test
   void slowListenerSlowsWritersThenIsClosedWhileWritersStayHealthy() throws Exception {
      RemoteCacheManager listenerManager = manager();
      List<RemoteCacheManager> writerManagers = new ArrayList<>();
      ExecutorService pool = Executors.newFixedThreadPool(4);
      Sluggish l = new Sluggish();
      try {
         RemoteCache<String, String> listening = listenerManager.getCache(CACHE);
         listening.addClientListener(l);
         // Big keys: each event is ~64 KiB, so a few hundred fill the socket buffers.
         String big = "k".repeat(64 * 1024);
         AtomicLong slowest = new AtomicLong();
         List<Future<Integer>> writers = new ArrayList<>();
         for (int w = 0; w < 4; w++) {
            RemoteCacheManager m = manager();
            writerManagers.add(m);
            RemoteCache<String, String> c = m.getCache(CACHE);
            int id = w;
            writers.add(pool.submit(() -> {
               int done = 0;
               for (int i = 0; i < 150; i++) {
                  long t0 = System.nanoTime();
                  c.put(big + id + "-" + i, "v");
                  slowest.accumulateAndGet(System.nanoTime() - t0, Math::max);
                  done++;
               }
               return done;
            }));
         }
         for (Future<Integer> f : writers) assertEquals(150, f.get(120, TimeUnit.SECONDS));
         assertTrue(slowest.get() >= TimeUnit.MILLISECONDS.toNanos(200),
               "writers were held back while the listener was congested (slowest put "
                     + TimeUnit.NANOSECONDS.toMillis(slowest.get()) + " ms)");
         // The server closed the listener's connection: the client notices and fails over.
         l.slow = false;
         long end = System.currentTimeMillis() + 60_000;
         while (l.failovers.get() == 0 && System.currentTimeMillis() < end) Thread.sleep(50);
         assertTrue(l.failovers.get() > 0, "the overflowed listener's connection was closed");
         assertTrue(l.created.get() < 600, "not every event reached the overflowed listener");
         // The writers are still fine.
         RemoteCache<String, String> c = writerManagers.get(0).getCache(CACHE);
         c.put("after", "ok");
         assertEquals("ok", c.get("after"));
      } finally {
         pool.shutdownNow();
         for (RemoteCacheManager m : writerManagers) m.stop();
         listenerManager.stop();
      }
   }
}
