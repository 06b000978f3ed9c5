package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.client.hotrod.configuration.TransactionMode;
import org.infinispan.client.hotrod.exceptions.HotRodClientException;
import org.infinispan.client.hotrod.transaction.lookup.RemoteTransactionManagerLookup;
import org.infinispan.client.hotrod.transaction.manager.RemoteTransactionManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Hot Rod remote transactions through the client's {@link RemoteTransactionManager}, and lock
 * conflicts on Keycloak's transactional caches (NON_DURABLE_XA, PESSIMISTIC, acquire timeout 0).
 *
 * <p>The transaction API is {@code javax.transaction} on the 14.0 line and {@code
 * jakarta.transaction} from 15.0, so the transaction manager is driven through reflection and the
 * same source runs on every line.
 */
class TransactionsTest {
   static final List<RemoteCacheManager> MANAGERS = new ArrayList<>();

   @AfterAll
   static void close() {
      synchronized (MANAGERS) {
         for (RemoteCacheManager m : MANAGERS) m.stop();
         MANAGERS.clear();
      }
   }

   /** A client whose view of {@code cache} is transactional in {@code mode}. */
   static RemoteCache<String, String> txCache(String cache, TransactionMode mode) {
      ConfigurationBuilder b = Ironrod.config(ClientIntelligence.HASH_DISTRIBUTION_AWARE,
            ProtocolVersion.PROTOCOL_VERSION_AUTO);
      b.remoteCache(cache).transactionMode(mode)
            .transactionManagerLookup(RemoteTransactionManagerLookup.getInstance());
      return register(new RemoteCacheManager(b.build())).getCache(cache);
   }

   /** A client that uses {@code cache} without transactions. */
   static RemoteCache<String, String> plainCache(String cache) {
      return register(Ironrod.manager(ClientIntelligence.HASH_DISTRIBUTION_AWARE)).getCache(cache);
   }

   static RemoteCacheManager register(RemoteCacheManager m) {
      synchronized (MANAGERS) {
         MANAGERS.add(m);
      }
      return m;
   }

   // ------------------------------------------------------------ the transaction manager

   static Object tm() {
      return RemoteTransactionManager.getInstance();
   }

   static Object call(Object target, String method) throws Exception {
      try {
         return target.getClass().getMethod(method).invoke(target);
      } catch (InvocationTargetException e) {
         if (e.getCause() instanceof Exception) throw (Exception) e.getCause();
         throw e;
      }
   }

   static void begin() throws Exception {
      call(tm(), "begin");
   }

   static void commit() throws Exception {
      call(tm(), "commit");
   }

   static void rollback() throws Exception {
      call(tm(), "rollback");
   }

   /** Rolls back the thread's transaction if one is still associated (after a failed operation). */
   static void rollbackQuietly() {
      try {
         if (call(tm(), "getTransaction") != null) rollback();
      } catch (Exception ignored) {
         // already finished
      }
   }

   static boolean isRollback(Throwable e) {
      return e.getClass().getSimpleName().equals("RollbackException");
   }

   /** Registers {@code before} as a synchronization of the current transaction. */
   static void beforeCompletion(Runnable before) throws Exception {
      Object tx = call(tm(), "getTransaction");
      Method register = null;
      for (Method m : tx.getClass().getMethods()) {
         if (m.getName().equals("registerSynchronization")) register = m;
      }
      assertNotNull(register, "Transaction.registerSynchronization");
      Class<?> syncType = register.getParameterTypes()[0];
      Object sync = Proxy.newProxyInstance(syncType.getClassLoader(), new Class<?>[]{syncType},
            (proxy, method, args) -> {
               if (method.getName().equals("beforeCompletion")) before.run();
               if (method.getName().equals("toString")) return "test synchronization";
               if (method.getName().equals("hashCode")) return System.identityHashCode(proxy);
               if (method.getName().equals("equals")) return proxy == args[0];
               return null;
            });
      register.invoke(tx, sync);
   }

   // ------------------------------------------------------------ tests

   @ParameterizedTest
   @EnumSource(value = TransactionMode.class, names = {"NON_XA", "NON_DURABLE_XA"})
   void commitMakesEveryWriteVisible(TransactionMode mode) throws Exception {
      RemoteCache<String, String> c = txCache("sessions", mode);
      RemoteCache<String, String> plain = plainCache("sessions");
      String p = Ironrod.unique("commit-" + mode);
      plain.put(p + "old", "0");
      begin();
      c.put(p + "a", "1");
      c.put(p + "b", "2");
      c.remove(p + "old");
      assertNull(plain.get(p + "a"), "nothing is visible before commit");
      commit();
      assertEquals("1", plain.get(p + "a"));
      assertEquals("2", plain.get(p + "b"));
      assertNull(plain.get(p + "old"));
   }

   @ParameterizedTest
   @EnumSource(value = TransactionMode.class, names = {"NON_XA", "NON_DURABLE_XA"})
   void rollbackLeavesNothing(TransactionMode mode) throws Exception {
      RemoteCache<String, String> c = txCache("clientSessions", mode);
      RemoteCache<String, String> plain = plainCache("clientSessions");
      String p = Ironrod.unique("rollback-" + mode);
      plain.put(p + "kept", "0");
      begin();
      c.put(p + "a", "1");
      c.put(p + "kept", "changed");
      rollback();
      assertNull(plain.get(p + "a"));
      assertEquals("0", plain.get(p + "kept"));
      plain.put(p + "a", "free");
      assertEquals("free", plain.get(p + "a"), "no lock is left behind");
   }

   @ParameterizedTest
   @EnumSource(value = TransactionMode.class, names = {"NON_XA", "NON_DURABLE_XA"})
   void aConcurrentChangeOfAReadKeyRollsTheTransactionBack(TransactionMode mode) throws Exception {
      RemoteCache<String, String> c = txCache("work", mode);
      RemoteCache<String, String> plain = plainCache("work");
      String key = Ironrod.unique("skew-" + mode) + "k";
      plain.put(key, "0");
      begin();
      assertEquals("0", c.get(key), "the transaction reads the committed value");
      c.put(key, "from-tx");
      plain.put(key, "from-outside");
      try {
         commit();
         fail("the commit must fail: the value read changed");
      } catch (Exception e) {
         assertTrue(isRollback(e), "RollbackException, got " + e);
      }
      assertEquals("from-outside", plain.get(key));
   }

   @Test
   void aWriterMeetingAPreparedKeyGetsIspn000299AtOnce() throws Exception {
      // NON_XA prepares in beforeCompletion, ahead of synchronizations registered later, so the
      // one below runs while the server holds the transaction's lock.
      RemoteCache<String, String> c = txCache("loginFailures", TransactionMode.NON_XA);
      RemoteCache<String, String> plain = plainCache("loginFailures");
      String key = Ironrod.unique("conflict") + "k";
      AtomicReference<Throwable> seen = new AtomicReference<>();
      AtomicLong nanos = new AtomicLong();
      begin();
      c.put(key, "from-tx");
      beforeCompletion(() -> {
         long t0 = System.nanoTime();
         try {
            plain.put(key, "intruder");
         } catch (Throwable e) {
            seen.set(e);
         }
         nanos.set(System.nanoTime() - t0);
      });
      commit();
      Throwable e = seen.get();
      assertNotNull(e, "the write to a locked key must fail");
      assertTrue(e instanceof HotRodClientException, "a server error, got " + e);
      assertTrue(e.getMessage().contains("ISPN000299: Unable to acquire lock after 0 milliseconds"),
            e.getMessage());
      assertTrue(nanos.get() < TimeUnit.SECONDS.toNanos(2), "answered without waiting");
      assertEquals("from-tx", plain.get(key));
      plain.put(key, "after");
      assertEquals("after", plain.get(key));
   }

   /** N clients increment one counter, half through transactions, half through versions. */
   @Test
   void concurrentIncrementsLoseNoUpdate() throws Exception {
      int clients = 8;
      int perClient = 40;
      String key = Ironrod.unique("counter") + "k";
      plainCache("sessions").put(key, "0");
      AtomicLong retries = new AtomicLong();
      List<Callable<Integer>> tasks = new ArrayList<>();
      for (int i = 0; i < clients; i++) {
         boolean transactional = i % 2 == 0;
         RemoteCache<String, String> c = transactional
               ? txCache("sessions", i % 4 == 0 ? TransactionMode.NON_XA : TransactionMode.NON_DURABLE_XA)
               : plainCache("sessions");
         tasks.add(() -> {
            for (int n = 0; n < perClient; n++) {
               for (int attempt = 0; ; attempt++) {
                  if (attempt > 100_000) throw new AssertionError("increment starved");
                  if (transactional ? incrementInTransaction(c, key) : incrementWithVersion(c, key)) break;
                  retries.incrementAndGet();
               }
            }
            return perClient;
         });
      }
      ConcurrencyTest.race(tasks, 120);
      assertEquals(Integer.toString(clients * perClient), plainCache("sessions").get(key),
            "every committed increment counts once (retries: " + retries + ")");
   }

   static boolean incrementInTransaction(RemoteCache<String, String> c, String key) throws Exception {
      begin();
      try {
         String v = c.get(key);
         c.put(key, Long.toString(Long.parseLong(v) + 1));
      } catch (HotRodClientException e) {
         rollbackQuietly();
         return false;
      }
      try {
         commit();
         return true;
      } catch (Exception e) {
         if (isRollback(e)) return false;
         throw e;
      }
   }

   static boolean incrementWithVersion(RemoteCache<String, String> c, String key) {
      try {
         MetadataValue<String> mv = c.getWithMetadata(key);
         String next = Long.toString(Long.parseLong(mv.getValue()) + 1);
         return c.replaceWithVersion(key, next, mv.getVersion());
      } catch (HotRodClientException e) {
         // A transaction holds the key: Keycloak retries, and so does this client.
         assertTrue(e.getMessage().contains("ISPN000299"), e.getMessage());
         return false;
      }
   }

   /** Two clients hammer one key of a zero-timeout cache: every attempt is answered. */
   @Test
   void twoClientsHammeringOneKeyNeverHang() throws Exception {
      String key = Ironrod.unique("hammer") + "k";
      plainCache("actionTokens").put(key, "0");
      AtomicLong commits = new AtomicLong();
      AtomicLong conflicts = new AtomicLong();
      List<Callable<Integer>> tasks = new ArrayList<>();
      for (int i = 0; i < 2; i++) {
         RemoteCache<String, String> c = txCache("actionTokens", TransactionMode.NON_XA);
         tasks.add(() -> {
            for (int n = 0; n < 300; n++) {
               if (incrementInTransaction(c, key)) commits.incrementAndGet();
               else conflicts.incrementAndGet();
            }
            return 300;
         });
      }
      ConcurrencyTest.race(tasks, 120);
      assertEquals(600, commits.get() + conflicts.get(), "every attempt is answered");
      assertEquals(Long.toString(commits.get()), plainCache("actionTokens").get(key),
            "the counter equals the commits (conflicts: " + conflicts + ")");
   }
}
