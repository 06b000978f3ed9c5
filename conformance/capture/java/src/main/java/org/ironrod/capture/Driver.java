package org.ironrod.capture;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.lang.reflect.Method;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.infinispan.client.hotrod.Flag;
import org.infinispan.client.hotrod.MetadataValue;
import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.RemoteCounterManagerFactory;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryCreated;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryExpired;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryModified;
import org.infinispan.client.hotrod.annotation.ClientCacheEntryRemoved;
import org.infinispan.client.hotrod.annotation.ClientListener;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.client.hotrod.configuration.NearCacheMode;
import org.infinispan.client.hotrod.configuration.TransactionMode;
import org.infinispan.client.hotrod.event.ClientCacheEntryCreatedEvent;
import org.infinispan.client.hotrod.event.ClientCacheEntryExpiredEvent;
import org.infinispan.client.hotrod.event.ClientCacheEntryModifiedEvent;
import org.infinispan.client.hotrod.event.ClientCacheEntryRemovedEvent;
import org.infinispan.client.hotrod.multimap.MultimapCacheManager;
import org.infinispan.client.hotrod.multimap.RemoteMultimapCache;
import org.infinispan.client.hotrod.multimap.RemoteMultimapCacheManagerFactory;
import org.infinispan.client.hotrod.transaction.lookup.RemoteTransactionManagerLookup;
import org.infinispan.commons.marshall.UTF8StringMarshaller;
import org.infinispan.commons.util.CloseableIterator;
import org.infinispan.commons.util.Version;
import org.infinispan.counter.api.CounterConfiguration;
import org.infinispan.counter.api.CounterListener;
import org.infinispan.counter.api.CounterManager;
import org.infinispan.counter.api.CounterType;
import org.infinispan.counter.api.Handle;
import org.infinispan.counter.api.StrongCounter;
import org.infinispan.counter.api.WeakCounter;

/**
 * Drives one Java Hot Rod client line through its operations, through the recording proxy.
 * The same source is compiled against each client line (Maven profiles c14/c15/c16).
 *
 * <pre>
 * java -cp ... org.ironrod.capture.Driver [--host H] [--port 11422] [--auth-port 11423]
 *      [--control 11499] [--versions AUTO,4.0,...] [--basic-versions AUTO,2.9]
 *      [--auth-versions AUTO] [--auth-full-versions AUTO,2.9] [--xa-versions AUTO,4.0]
 *      [--near-versions AUTO,4.0] [--newest 4.0] [--only group,group]
 * </pre>
 */
public final class Driver {
   static final String CLIENT_ID = "java-" + Version.getVersion();
   static final List<String[]> RESULTS = new ArrayList<>();
   // One worker thread, so thread-bound state (the transaction association) carries across ops.
   // It is replaced if an op times out and keeps the thread stuck.
   static ExecutorService EXEC = newWorker();

   static ExecutorService newWorker() {
      return Executors.newSingleThreadExecutor(r -> {
         Thread t = new Thread(r, "capture-op");
         t.setDaemon(true);
         return t;
      });
   }

   static Map<String, String> opts;
   static Control control;
   static String scenario = "";
   static Set<String> only;

   public static void main(String[] args) throws Exception {
      opts = parse(args);
      String onlyOpt = opts.getOrDefault("only", "");
      only = onlyOpt.isEmpty() ? null : new TreeSet<>(Arrays.asList(onlyOpt.split(",")));
      control = new Control(opts.getOrDefault("host", "127.0.0.1"), Integer.parseInt(opts.getOrDefault("control", "11499")));
      List<String> basicIntel = Arrays.asList(opts.getOrDefault("basic-versions", "AUTO,2.9").split(","));
      for (String v : opts.getOrDefault("versions", "AUTO").split(",")) {
         if (v.isEmpty()) continue;
         System.err.println("[" + CLIENT_ID + "] version " + v);
         runVersion(v, ClientIntelligence.HASH_DISTRIBUTION_AWARE);
         if (basicIntel.contains(v)) runVersion(v, ClientIntelligence.BASIC);
      }
      int authPort = Integer.parseInt(opts.getOrDefault("auth-port", "0"));
      if (authPort > 0 && wanted("auth")) {
         for (String v : opts.getOrDefault("auth-versions", "AUTO").split(",")) auth(v, authPort);
      }
      control.send("sync");
      int ok = 0, bad = 0;
      for (String[] r : RESULTS) {
         if ("OK".equals(r[0])) ok++; else bad++;
         System.out.println((r[0].equals("OK") ? "OK   " : "FAIL ") + r[1] + " :: " + r[2] + " :: " + r[3]);
      }
      System.out.println("SUMMARY " + CLIENT_ID + " ok=" + ok + " failed=" + bad);
      System.out.flush();
      System.exit(0);
   }

   // ------------------------------------------------------------------ plumbing

   static boolean wanted(String g) {
      return only == null || only.contains(g);
   }

   static void scenario(String name) {
      scenario = name;
      control.send("scenario " + CLIENT_ID + " " + name);
   }

   static int timeouts;

   static <T> T op(String name, Callable<T> c) {
      return op(name, 15, c);
   }

   static <T> T op(String name, int seconds, Callable<T> c) {
      Future<T> f = EXEC.submit(c);
      try {
         T v = f.get(seconds, TimeUnit.SECONDS);
         RESULTS.add(new String[]{"OK", scenario, name, show(v)});
         return v;
      } catch (TimeoutException e) {
         f.cancel(true);
         EXEC.shutdownNow();
         EXEC = newWorker();
         timeouts++;
         RESULTS.add(new String[]{"FAIL", scenario, name, "TIMEOUT after " + seconds + "s"});
      } catch (Throwable e) {
         Throwable t = e instanceof java.util.concurrent.ExecutionException && e.getCause() != null ? e.getCause() : e;
         RESULTS.add(new String[]{"FAIL", scenario, name, describe(t)});
         if (System.getenv("CAPTURE_DEBUG") != null) t.printStackTrace();
      }
      return null;
   }

   static void run(String name, ThrowingRunnable r) {
      op(name, () -> {
         r.run();
         return "done";
      });
   }

   interface ThrowingRunnable {
      void run() throws Exception;
   }

   static String describe(Throwable t) {
      StringBuilder sb = new StringBuilder();
      for (int i = 0; t != null && i < 3; i++, t = t.getCause()) {
         if (i > 0) sb.append(" <- ");
         sb.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
      }
      String s = sb.toString().replace('\n', ' ');
      return s.length() > 400 ? s.substring(0, 400) + "..." : s;
   }

   static String show(Object v) {
      String s;
      if (v instanceof MetadataValue) {
         MetadataValue<?> m = (MetadataValue<?>) v;
         s = "MetadataValue{value=" + m.getValue() + ",version=" + m.getVersion() + ",lifespan=" + m.getLifespan()
               + ",maxIdle=" + m.getMaxIdle() + ",created=" + (m.getCreated() > 0) + ",lastUsed=" + (m.getLastUsed() > 0) + "}";
      } else {
         s = String.valueOf(v);
      }
      s = s.replace('\n', ' ');
      return s.length() > 300 ? s.substring(0, 300) + "..." : s;
   }

   static Object invoke(Object target, String method, Object... args) throws Exception {
      for (Method m : target.getClass().getMethods()) {
         if (m.getName().equals(method) && m.getParameterCount() == args.length) {
            m.setAccessible(true);
            return m.invoke(target, args);
         }
      }
      throw new NoSuchMethodException(target.getClass().getName() + "." + method);
   }

   static ProtocolVersion protocol(String v) {
      return "AUTO".equalsIgnoreCase(v) ? ProtocolVersion.PROTOCOL_VERSION_AUTO
            : ProtocolVersion.valueOf("PROTOCOL_VERSION_" + v.replace(".", ""));
   }

   static ConfigurationBuilder baseConfig(String v, ClientIntelligence intel, int port) {
      ConfigurationBuilder b = new ConfigurationBuilder();
      b.addServer().host(opts.getOrDefault("host", "127.0.0.1")).port(port);
      b.version(protocol(v));
      b.clientIntelligence(intel);
      b.marshaller(new UTF8StringMarshaller());
      b.connectionTimeout(5000).socketTimeout(5000).maxRetries(0);
      b.remoteCache("tx").transactionMode(TransactionMode.NON_XA)
            .transactionManagerLookup(RemoteTransactionManagerLookup.getInstance());
      return b;
   }

   static RemoteCacheManager start(ConfigurationBuilder b) {
      return new RemoteCacheManager(b.build());
   }

   static void stop(RemoteCacheManager rcm) {
      if (rcm == null) return;
      try {
         EXEC.submit(rcm::stop).get(10, TimeUnit.SECONDS);
      } catch (Exception ignored) {
      }
   }

   // ------------------------------------------------------------------ per-version run

   static void runVersion(String v, ClientIntelligence intel) {
      String tag = v + "/" + (intel == ClientIntelligence.BASIC ? "basic" : "hash");
      int port = Integer.parseInt(opts.getOrDefault("port", "11422"));
      scenario(tag + "/connect");
      RemoteCacheManager rcm = op("start", () -> start(baseConfig(v, intel, port)));
      if (rcm == null) return;
      RemoteCache<String, String> cache = op("getCache-default", () -> rcm.getCache("default"));
      if (cache == null) {
         stop(rcm);
         return;
      }
      int before = timeouts;
      if (wanted("basic")) basic(tag, cache);
      if (wanted("iteration")) iteration(tag, cache);
      if (wanted("listeners")) listeners(tag, cache);
      if (wanted("exec")) exec(tag, cache);
      if (wanted("counters")) counters(tag, rcm);
      if (wanted("multimap")) multimap(tag, rcm);
      if (wanted("transactions")) transactions(tag, rcm);
      if (wanted("streaming")) streaming(tag, cache);
      if (wanted("unknown-cache")) {
         scenario(tag + "/unknown-cache");
         RemoteCache<String, String> u = op("getCache-unknown", () -> rcm.getCache("no-such-cache"));
         if (u != null) op("get-unknown-cache", () -> u.get("k"));
      }
      if (wanted("query")) {
         scenario(tag + "/query");
         op("query", () -> query(cache));
      }
      scenario(tag + "/stop");
      stop(rcm);
      if (timeouts > before) System.err.println("[" + CLIENT_ID + "] " + tag + ": " + (timeouts - before) + " timeouts");
      if (wanted("near-cache") && extraAt("near-versions", v) && intel != ClientIntelligence.BASIC) {
         nearCache(tag, v, port);
      }
      if (wanted("xa") && extraAt("xa-versions", v) && intel != ClientIntelligence.BASIC) {
         fullXa(tag, v, port);
      }
      if (wanted("protostream") && "AUTO".equals(v) && intel != ClientIntelligence.BASIC) {
         protostream(tag, v, port);
      }
   }

   /** Whether a per-version extra scenario runs at v: the listed versions, default AUTO and --newest. */
   static boolean extraAt(String option, String v) {
      String list = opts.get(option);
      if (list == null) return "AUTO".equals(v) || v.equals(opts.get("newest"));
      return Arrays.asList(list.split(",")).contains(v);
   }

   static Object query(RemoteCache<String, String> cache) throws Exception {
      // RemoteCache.query(String) exists from 15.0 (looked up without enumerating all methods,
      // which would need the optional query DSL classes); older lines need the query DSL jars.
      try {
         Class<?> qc = Class.forName("org.infinispan.commons.api.query.Query");
         java.lang.invoke.MethodHandles.Lookup l = java.lang.invoke.MethodHandles.publicLookup();
         Object query = l.findVirtual(RemoteCache.class, "query", java.lang.invoke.MethodType.methodType(qc, String.class))
               .invoke(cache, "FROM nope.Thing");
         return l.findVirtual(qc, "execute", java.lang.invoke.MethodType.methodType(
               Class.forName("org.infinispan.commons.api.query.QueryResult"))).invoke(query);
      } catch (ClassNotFoundException | NoSuchMethodException e) {
         Object qf = Class.forName("org.infinispan.client.hotrod.Search")
               .getMethod("getQueryFactory", RemoteCache.class).invoke(null, cache);
         return invoke(invoke(qf, "create", "FROM nope.Thing"), "execute");
      } catch (Exception e) {
         throw e;
      } catch (Throwable t) {
         throw new Exception(t);
      }
   }

   static void basic(String tag, RemoteCache<String, String> c) {
      RemoteCache<String, String> f = c.withFlags(Flag.FORCE_RETURN_VALUE);
      scenario(tag + "/put-get-remove-contains");
      run("clear", c::clear);
      op("get-absent", () -> c.get("k-absent"));
      op("put", () -> c.put("k1", "v1"));
      op("get", () -> c.get("k1"));
      op("containsKey-present", () -> c.containsKey("k1"));
      op("containsKey-absent", () -> c.containsKey("k-absent"));
      op("remove-present", () -> c.remove("k1"));
      op("remove-absent", () -> c.remove("k1"));
      op("put-unicode", () -> c.put("ключ-☃", "värde-😀"));
      op("get-unicode", () -> c.get("ключ-☃"));
      op("put-large", () -> c.put("k-large", "x".repeat(70000)));
      op("get-large", () -> c.get("k-large"));

      scenario(tag + "/force-return-value");
      op("put-frv-absent", () -> f.put("kf", "f1"));
      op("put-frv-present", () -> f.put("kf", "f2"));
      op("putIfAbsent-frv-present", () -> f.putIfAbsent("kf", "f3"));
      op("putIfAbsent-frv-absent", () -> f.putIfAbsent("kf2", "g1"));
      op("replace-frv-present", () -> f.replace("kf", "f4"));
      op("replace-frv-absent", () -> f.replace("kf-absent", "z"));
      op("remove-frv-present", () -> f.remove("kf"));
      op("remove-frv-absent", () -> f.remove("kf"));
      op("put-skip-listener", () -> c.withFlags(Flag.SKIP_LISTENER_NOTIFICATION, Flag.SKIP_INDEXING).put("kf3", "x"));
      op("put-default-lifespan", () -> c.withFlags(Flag.DEFAULT_LIFESPAN, Flag.DEFAULT_MAXIDLE).put("kf4", "x"));
      op("get-skip-cache-load", () -> c.withFlags(Flag.SKIP_CACHE_LOAD).get("kf3"));

      scenario(tag + "/conditional");
      op("putIfAbsent-absent", () -> c.putIfAbsent("kc", "c1"));
      op("putIfAbsent-present", () -> c.putIfAbsent("kc", "c2"));
      op("replace-present", () -> c.replace("kc", "c3"));
      op("replace-absent", () -> c.replace("kc-absent", "c3"));
      op("replace-old-new", () -> c.replace("kc", "c3", "c4"));
      op("remove-key-value", () -> c.remove("kc", "c4"));

      scenario(tag + "/versioned");
      op("put", () -> c.put("kv", "x0"));
      MetadataValue<String> m = op("getWithMetadata", () -> c.getWithMetadata("kv"));
      long ver = m == null ? 0 : m.getVersion();
      op("replaceWithVersion-mismatch", () -> c.replaceWithVersion("kv", "x1", ver + 12345));
      op("replaceWithVersion-mismatch-frv", () -> f.replaceWithVersion("kv", "x1", ver + 12345));
      op("replaceWithVersion-match", () -> c.replaceWithVersion("kv", "x2", ver));
      MetadataValue<String> m2 = op("getWithMetadata-2", () -> c.getWithMetadata("kv"));
      long ver2 = m2 == null ? 0 : m2.getVersion();
      op("replaceWithVersion-match-frv", () -> f.replaceWithVersion("kv", "x3", ver2));
      MetadataValue<String> m3 = op("getWithMetadata-3", () -> c.getWithMetadata("kv"));
      long ver3 = m3 == null ? 0 : m3.getVersion();
      op("replaceWithVersion-lifespan", () -> c.replaceWithVersion("kv", "x4", ver3, 100, 200));
      op("removeWithVersion-mismatch", () -> c.removeWithVersion("kv", 987654321L));
      op("removeWithVersion-mismatch-frv", () -> f.removeWithVersion("kv", 987654321L));
      MetadataValue<String> m4 = op("getWithMetadata-4", () -> c.getWithMetadata("kv"));
      op("removeWithVersion-match", () -> c.removeWithVersion("kv", m4 == null ? 0 : m4.getVersion()));
      op("removeWithVersion-absent", () -> c.removeWithVersion("kv", 1L));
      op("getWithMetadata-absent", () -> c.getWithMetadata("kv"));

      scenario(tag + "/expiry-metadata");
      Object[][] exp = {
            {10L, TimeUnit.SECONDS, -1L, TimeUnit.SECONDS},
            {5L, TimeUnit.MINUTES, 1L, TimeUnit.HOURS},
            {30000L, TimeUnit.MILLISECONDS, 2L, TimeUnit.DAYS},
            {123456789L, TimeUnit.NANOSECONDS, 1000L, TimeUnit.MICROSECONDS},
            {2L, TimeUnit.DAYS, 10L, TimeUnit.SECONDS},
            {1L, TimeUnit.HOURS, 0L, TimeUnit.SECONDS},
            {-1L, TimeUnit.SECONDS, 30L, TimeUnit.SECONDS},
            {0L, TimeUnit.SECONDS, 0L, TimeUnit.SECONDS},
            {40L, TimeUnit.DAYS, -1L, TimeUnit.SECONDS},
      };
      for (int i = 0; i < exp.length; i++) {
         Object[] e = exp[i];
         String k = "kexp" + i;
         op("put-" + e[0] + e[1] + "-" + e[2] + e[3], () -> c.put(k, "e", (Long) e[0], (TimeUnit) e[1], (Long) e[2], (TimeUnit) e[3]));
         op("getWithMetadata-" + i, () -> c.getWithMetadata(k));
      }
      op("put-lifespan-only", () -> c.put("kexp-l", "e", 1, TimeUnit.HOURS));
      op("putIfAbsent-lifespan", () -> c.putIfAbsent("kexp-p", "e", 1, TimeUnit.HOURS, 5, TimeUnit.MINUTES));
      op("replace-lifespan", () -> c.replace("kexp-p", "e2", 2, TimeUnit.HOURS, 6, TimeUnit.MINUTES));
      op("getWithMetadata-replaced", () -> c.getWithMetadata("kexp-p"));

      scenario(tag + "/putAll-getAll");
      Map<String, String> all = new LinkedHashMap<>();
      for (int i = 0; i < 5; i++) all.put("pa" + i, "v" + i);
      run("putAll", () -> c.putAll(all));
      run("putAll-lifespan", () -> c.putAll(Map.of("pa9", "v9"), 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES));
      op("getAll", () -> new java.util.TreeMap<>(c.getAll(new TreeSet<>(Arrays.asList("pa0", "pa1", "pa9", "pa-absent")))).toString());

      scenario(tag + "/size-stats-clear");
      op("size", c::size);
      op("isEmpty", c::isEmpty);
      op("serverStatistics", () -> c.serverStatistics().getStatsMap().keySet().toString());
      run("clear", c::clear);
      op("size-after-clear", c::size);
   }

   static void iteration(String tag, RemoteCache<String, String> c) {
      scenario(tag + "/iteration");
      Map<String, String> all = new LinkedHashMap<>();
      for (int i = 0; i < 5; i++) all.put("it" + i, "v" + i);
      run("putAll", () -> c.putAll(all));
      op("put-lifespan", () -> c.put("it-exp", "v", 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES));
      op("retrieveEntries-batch2", () -> {
         List<String> seen = new ArrayList<>();
         try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 2)) {
            while (it.hasNext()) seen.add(String.valueOf(it.next().getKey()));
         }
         return new TreeSet<>(seen);
      });
      op("retrieveEntries-segments", () -> {
         List<String> seen = new ArrayList<>();
         try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, Set.of(0, 1, 2, 3), 2)) {
            while (it.hasNext()) seen.add(String.valueOf(it.next().getKey()));
         }
         return seen.size();
      });
      op("retrieveEntriesWithMetadata", () -> {
         List<String> seen = new ArrayList<>();
         try (CloseableIterator<Map.Entry<Object, MetadataValue<Object>>> it = c.retrieveEntriesWithMetadata(null, 3)) {
            while (it.hasNext()) {
               Map.Entry<Object, MetadataValue<Object>> e = it.next();
               seen.add(e.getKey() + "=" + e.getValue().getLifespan());
            }
         }
         return new TreeSet<>(seen);
      });
      op("retrieveEntries-close-early", () -> {
         try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 1)) {
            return it.hasNext() ? String.valueOf(it.next().getKey()) : null;
         }
      });
      op("keySet-iterate", () -> {
         List<String> keys = new ArrayList<>();
         try (CloseableIterator<String> it = c.keySet().iterator()) {
            while (it.hasNext()) keys.add(it.next());
         }
         return new TreeSet<>(keys);
      });
      op("values-iterate", () -> {
         int n = 0;
         try (CloseableIterator<String> it = c.values().iterator()) {
            while (it.hasNext()) { it.next(); n++; }
         }
         return n;
      });
      op("entrySet-contains", () -> c.entrySet().contains(Map.entry("it0", "v0")));
      op("retrieveEntries-key-only-converter", () -> {
         int n = 0;
         try (CloseableIterator<Map.Entry<Object, Object>> it =
                    c.retrieveEntries("org.infinispan.server.hotrod.HotRodServer$ToEmptyBytesKeyValueFilterConverter", 10)) {
            while (it.hasNext()) { it.next(); n++; }
         }
         return n;
      });
   }

   @ClientListener(includeCurrentState = true)
   public static final class StateListener {
      final List<String> events = new CopyOnWriteArrayList<>();

      @ClientCacheEntryCreated
      public void created(ClientCacheEntryCreatedEvent<String> e) { events.add("created:" + e.getKey()); }

      @ClientCacheEntryModified
      public void modified(ClientCacheEntryModifiedEvent<String> e) { events.add("modified:" + e.getKey()); }

      @ClientCacheEntryRemoved
      public void removed(ClientCacheEntryRemovedEvent<String> e) { events.add("removed:" + e.getKey()); }

      @ClientCacheEntryExpired
      public void expired(ClientCacheEntryExpiredEvent<String> e) { events.add("expired:" + e.getKey()); }
   }

   @ClientListener
   public static final class PlainListener {
      final List<String> events = new CopyOnWriteArrayList<>();

      @ClientCacheEntryCreated
      public void created(ClientCacheEntryCreatedEvent<String> e) { events.add("created:" + e.getKey() + "@" + e.getVersion()); }

      @ClientCacheEntryModified
      public void modified(ClientCacheEntryModifiedEvent<String> e) { events.add("modified:" + e.getKey()); }

      @ClientCacheEntryRemoved
      public void removed(ClientCacheEntryRemovedEvent<String> e) { events.add("removed:" + e.getKey()); }

      @ClientCacheEntryExpired
      public void expired(ClientCacheEntryExpiredEvent<String> e) { events.add("expired:" + e.getKey()); }
   }

   static void listeners(String tag, RemoteCache<String, String> c) {
      scenario(tag + "/listeners");
      PlainListener l = new PlainListener();
      run("addClientListener", () -> c.addClientListener(l));
      op("put-create", () -> c.put("lk1", "v1"));
      op("put-modify", () -> c.put("lk1", "v2"));
      op("put-skip-listener", () -> c.withFlags(Flag.SKIP_LISTENER_NOTIFICATION).put("lk1", "v3"));
      op("remove", () -> c.remove("lk1"));
      op("put-short-lifespan", () -> c.put("lk-exp", "v", 1, TimeUnit.SECONDS));
      run("sleep", () -> Thread.sleep(1600));
      op("get-expired", () -> c.get("lk-exp"));
      run("sleep", () -> Thread.sleep(300));
      run("removeClientListener", () -> c.removeClientListener(l));
      op("events-seen", () -> l.events);

      scenario(tag + "/listener-include-state");
      op("put-state", () -> c.put("ls1", "s1"));
      StateListener s = new StateListener();
      run("addClientListener-includeCurrentState", () -> c.addClientListener(s));
      op("put", () -> c.put("ls2", "s2"));
      run("sleep", () -> Thread.sleep(200));
      run("removeClientListener", () -> c.removeClientListener(s));
      op("events-seen", () -> s.events);
   }

   static void exec(String tag, RemoteCache<String, String> c) {
      scenario(tag + "/exec");
      op("execute-unknown-task", () -> c.execute("unknown-task", Map.of("p1", "v1")));
      op("execute-unknown-task-noparams", () -> c.execute("unknown-task"));
   }

   static void counters(String tag, RemoteCacheManager rcm) {
      scenario(tag + "/counters");
      String t = tag.replace('/', '-').replace('.', '_');
      String s = "jstrong-" + t, w = "jweak-" + t, b = "jbounded-" + t;
      CounterManager cm = op("asCounterManager", () -> RemoteCounterManagerFactory.asCounterManager(rcm));
      if (cm == null) return;
      op("isDefined-absent", () -> cm.isDefined(s));
      op("getConfiguration-undefined", () -> cm.getConfiguration("jundefined"));
      op("define-strong", () -> cm.defineCounter(s, CounterConfiguration.builder(CounterType.UNBOUNDED_STRONG).initialValue(5).build()));
      op("define-strong-again", () -> cm.defineCounter(s, CounterConfiguration.builder(CounterType.UNBOUNDED_STRONG).initialValue(5).build()));
      op("define-weak", () -> cm.defineCounter(w, CounterConfiguration.builder(CounterType.WEAK).concurrencyLevel(4).initialValue(1).build()));
      op("define-bounded", () -> cm.defineCounter(b, CounterConfiguration.builder(CounterType.BOUNDED_STRONG).lowerBound(-10).upperBound(10).build()));
      op("isDefined", () -> cm.isDefined(s));
      op("getConfiguration-strong", () -> cm.getConfiguration(s));
      op("getConfiguration-weak", () -> cm.getConfiguration(w));
      op("getConfiguration-bounded", () -> cm.getConfiguration(b));
      op("getCounterNames", () -> new TreeSet<>(cm.getCounterNames()));
      StrongCounter sc = op("getStrongCounter", () -> cm.getStrongCounter(s));
      if (sc != null) {
         List<String> events = new CopyOnWriteArrayList<>();
         CounterListener listener = ev -> events.add(ev.getOldValue() + "->" + ev.getNewValue());
         Handle<CounterListener> h = op("addListener", () -> sc.addListener(listener));
         op("getValue", () -> sc.sync().getValue());
         op("addAndGet", () -> sc.sync().addAndGet(10));
         op("incrementAndGet", () -> sc.sync().incrementAndGet());
         op("compareAndSwap-match", () -> sc.sync().compareAndSwap(16, 20));
         op("compareAndSwap-mismatch", () -> sc.sync().compareAndSwap(16, 30));
         op("compareAndSet", () -> sc.sync().compareAndSet(20, 21));
         op("getAndSet", () -> invoke(sc.sync(), "getAndSet", 42L));
         run("reset", () -> sc.sync().reset());
         run("sleep", () -> Thread.sleep(200));
         if (h != null) run("removeListener", h::remove);
         op("counter-events-seen", () -> events);
         op("getConfiguration", sc::getConfiguration);
      }
      StrongCounter bc = op("getStrongCounter-bounded", () -> cm.getStrongCounter(b));
      if (bc != null) {
         op("addAndGet-bounded-upper", () -> bc.sync().addAndGet(100));
         op("addAndGet-bounded-lower", () -> bc.sync().addAndGet(-100));
      }
      WeakCounter wc = op("getWeakCounter", () -> cm.getWeakCounter(w));
      if (wc != null) {
         run("add", () -> wc.sync().add(3));
         op("getValue", wc::getValue);
         run("reset", () -> wc.sync().reset());
         run("remove", () -> wc.sync().remove());
      }
      run("remove-strong", () -> cm.remove(s));
      run("remove-bounded", () -> cm.remove(b));
      op("isDefined-after-remove", () -> cm.isDefined(s));
      op("getStrongCounter-undefined", () -> cm.getStrongCounter("jundefined").getValue().get(5, TimeUnit.SECONDS));
   }

   static void multimap(String tag, RemoteCacheManager rcm) {
      scenario(tag + "/multimap");
      MultimapCacheManager<String, String> mm = op("multimapManager", () -> RemoteMultimapCacheManagerFactory.from(rcm));
      if (mm == null) return;
      for (boolean dup : new boolean[]{false, true}) {
         RemoteMultimapCache<String, String> m = op("get-multimap-duplicates-" + dup, () -> mm.get("multimap", dup));
         if (m == null) continue;
         String k = "mk-" + dup;
         run("put-a", () -> m.put(k, "a").get(10, TimeUnit.SECONDS));
         run("put-b", () -> m.put(k, "b").get(10, TimeUnit.SECONDS));
         run("put-b-again", () -> m.put(k, "b").get(10, TimeUnit.SECONDS));
         op("get", () -> m.get(k).get(10, TimeUnit.SECONDS));
         op("get-absent", () -> m.get("mk-absent").get(10, TimeUnit.SECONDS));
         op("getWithMetadata", () -> String.valueOf(m.getWithMetadata(k).get(10, TimeUnit.SECONDS).getCollection()));
         op("size", () -> m.size().get(10, TimeUnit.SECONDS));
         op("containsKey", () -> m.containsKey(k).get(10, TimeUnit.SECONDS));
         op("containsValue", () -> m.containsValue("a").get(10, TimeUnit.SECONDS));
         op("containsEntry", () -> m.containsEntry(k, "b").get(10, TimeUnit.SECONDS));
         op("remove-entry", () -> m.remove(k, "a").get(10, TimeUnit.SECONDS));
         op("remove-key", () -> m.remove(k).get(10, TimeUnit.SECONDS));
         op("remove-key-absent", () -> m.remove(k).get(10, TimeUnit.SECONDS));
      }
   }

   static void transactions(String tag, RemoteCacheManager rcm) {
      scenario(tag + "/transactions");
      RemoteCache<String, String> tx = op("getCache-tx", () -> rcm.getCache("tx"));
      if (tx == null) return;
      Object tm = op("getTransactionManager", () -> (Object) tx.getTransactionManager());
      if (tm == null) return;
      op("put-outside", () -> tx.put("tk0", "base"));
      run("begin", () -> invoke(tm, "begin"));
      op("tx-get", () -> tx.get("tk0"));
      op("tx-put", () -> tx.put("tk1", "v1"));
      op("tx-replace", () -> tx.replace("tk0", "changed"));
      op("tx-remove-absent", () -> tx.remove("tk-absent"));
      run("commit", () -> invoke(tm, "commit"));
      op("get-after-commit", () -> tx.get("tk1"));
      run("begin-2", () -> invoke(tm, "begin"));
      op("tx-put-rb", () -> tx.put("tk2", "never"));
      run("rollback", () -> invoke(tm, "rollback"));
      op("get-after-rollback", () -> tx.get("tk2"));
      run("begin-readonly", () -> invoke(tm, "begin"));
      op("tx-get-only", () -> tx.get("tk1"));
      run("commit-readonly", () -> invoke(tm, "commit"));
      // make sure no transaction stays associated with a pooled worker thread
      op("tm-status", () -> invoke(tm, "getStatus"));
   }

   static void fullXa(String tag, String v, int port) {
      scenario(tag + "/transactions-full-xa");
      ConfigurationBuilder b = baseConfig(v, ClientIntelligence.HASH_DISTRIBUTION_AWARE, port);
      b.remoteCache("tx").transactionMode(TransactionMode.FULL_XA);
      RemoteCacheManager rcm = op("start-full-xa", () -> start(b));
      if (rcm == null) return;
      RemoteCache<String, String> tx = op("getCache-tx", () -> rcm.getCache("tx"));
      Object tm = tx == null ? null : op("getTransactionManager", () -> (Object) tx.getTransactionManager());
      if (tm != null) {
         run("begin", () -> invoke(tm, "begin"));
         op("tx-put", () -> tx.put("xk1", "v1"));
         op("tx-put-2", () -> tx.put("xk2", "v2"));
         run("commit-two-phase", () -> invoke(tm, "commit"));
         op("get-after-commit", () -> tx.get("xk1"));
         run("begin-rb", () -> invoke(tm, "begin"));
         op("tx-put-rb", () -> tx.put("xk3", "never"));
         run("rollback", () -> invoke(tm, "rollback"));
      }
      op("xa-recover", () -> {
         javax.transaction.xa.XAResource xa = rcm.getXaResource();
         javax.transaction.xa.Xid[] xids = xa.recover(
               javax.transaction.xa.XAResource.TMSTARTRSCAN | javax.transaction.xa.XAResource.TMENDRSCAN);
         return xids == null ? -1 : xids.length;
      });
      stop(rcm);
   }

   static void streaming(String tag, RemoteCache<String, String> c) {
      scenario(tag + "/streaming");
      byte[] payload = new byte[20000];
      for (int i = 0; i < payload.length; i++) payload[i] = (byte) ('a' + i % 26);
      run("stream-put", () -> {
         try (OutputStream os = c.streaming().put("sk1")) {
            os.write(payload);
         }
      });
      op("stream-get", () -> {
         try (InputStream is = c.streaming().get("sk1")) {
            return is == null ? -1 : is.readAllBytes().length;
         }
      });
      run("stream-put-lifespan", () -> {
         try (OutputStream os = c.streaming().put("sk2", 1, TimeUnit.HOURS, 10, TimeUnit.MINUTES)) {
            os.write("small".getBytes(StandardCharsets.UTF_8));
         }
      });
      run("stream-putIfAbsent-present", () -> {
         try (OutputStream os = c.streaming().putIfAbsent("sk2")) {
            os.write("other".getBytes(StandardCharsets.UTF_8));
         }
      });
      op("stream-get-absent", () -> {
         try (InputStream is = c.streaming().get("sk-absent")) {
            return is == null ? "null" : "present";
         }
      });
      op("get-streamed-value", () -> c.getWithMetadata("sk2"));
      String v = tag.substring(0, tag.indexOf('/'));
      if (hasClass("org.infinispan.client.hotrod.impl.operations.PutStreamEndOperation")
            && ("AUTO".equals(v) || v.equals(opts.get("newest")))) {
         streamEnd(c);
      }
   }

   static boolean hasClass(String name) {
      try {
         Class.forName(name);
         return true;
      } catch (ClassNotFoundException e) {
         return false;
      }
   }

   static Object field(Object target, String name) throws Exception {
      for (Class<?> k = target.getClass(); k != null; k = k.getSuperclass()) {
         try {
            java.lang.reflect.Field f = k.getDeclaredField(name);
            f.setAccessible(true);
            return f.get(target);
         } catch (NoSuchFieldException ignored) {
         }
      }
      throw new NoSuchFieldException(target.getClass().getName() + "." + name);
   }

   /**
    * 16.x (protocol 4.1) put streams: the public API ends every put stream with PUT_STREAM_NEXT
    * (last=true) and never sends PUT_STREAM_END, although the client has the operation
    * (CacheOperationsFactory.newPutStreamEndOperation). Drive it through the client's own
    * internals the way StreamingRemoteCacheImpl drives the other stream operations: start a put
    * stream, send one non-final chunk, then end (abandon) it on the stream's channel.
    */
   static void streamEnd(RemoteCache<String, String> c) {
      scenario(scenario.substring(0, scenario.lastIndexOf('/')) + "/streaming-put-end");
      byte[] chunk = "partial-chunk-never-completed".getBytes(StandardCharsets.UTF_8);
      op("stream-put-start-next-end", () -> {
         Object s = c.streaming();
         Object factory = field(s, "factory");
         Object dispatcher = field(s, "dispatcher");
         Object startOp = invoke(factory, "newPutStreamStartOperation", "sk-end", 0L, -1L, TimeUnit.SECONDS, -1L, TimeUnit.SECONDS);
         Object resp = invoke(dispatcher, "await", invoke(dispatcher, "execute", startOp));
         Object id = invoke(resp, "id");
         Object channel = invoke(resp, "channel");
         Object addr = Class.forName("org.infinispan.client.hotrod.impl.transport.netty.ChannelRecord")
               .getMethod("of", Class.forName("io.netty.channel.Channel")).invoke(null, channel);
         Object buf = Class.forName("io.netty.buffer.Unpooled").getMethod("wrappedBuffer", byte[].class).invoke(null, (Object) chunk);
         Object nextOp = invoke(factory, "newPutStreamNextOperation", id, false, buf, channel);
         Object nextRes = invoke(dispatcher, "await", invoke(dispatcher, "executeOnSingleAddress", nextOp, addr));
         Object endOp = invoke(factory, "newPutStreamEndOperation", id);
         Object endRes = invoke(dispatcher, "await", invoke(dispatcher, "executeOnSingleAddress", endOp, addr));
         return "id=" + id + " next=" + nextRes + " end=" + endRes;
      });
      op("get-after-put-end", () -> c.get("sk-end"));
      op("containsKey-after-put-end", () -> c.containsKey("sk-end"));
      // a second stream abandoned right after START, with no data
      op("stream-put-start-end", () -> {
         Object s = c.streaming();
         Object factory = field(s, "factory");
         Object dispatcher = field(s, "dispatcher");
         Object startOp = invoke(factory, "newPutStreamStartOperation", "sk-end2", 0L, 1L, TimeUnit.HOURS, -1L, TimeUnit.SECONDS);
         Object resp = invoke(dispatcher, "await", invoke(dispatcher, "execute", startOp));
         Object id = invoke(resp, "id");
         Object addr = Class.forName("org.infinispan.client.hotrod.impl.transport.netty.ChannelRecord")
               .getMethod("of", Class.forName("io.netty.channel.Channel")).invoke(null, invoke(resp, "channel"));
         Object endOp = invoke(factory, "newPutStreamEndOperation", id);
         return "id=" + id + " end=" + invoke(dispatcher, "await", invoke(dispatcher, "executeOnSingleAddress", endOp, addr));
      });
      op("get-after-put-end-2", () -> c.get("sk-end2"));
   }

   static void nearCache(String tag, String v, int port) {
      scenario(tag + "/near-cache-bloom");
      ConfigurationBuilder b = baseConfig(v, ClientIntelligence.HASH_DISTRIBUTION_AWARE, port);
      b.remoteCache("near").nearCacheMode(NearCacheMode.INVALIDATED).nearCacheMaxEntries(16).nearCacheUseBloomFilter(true);
      RemoteCacheManager rcm = op("start-near", () -> start(b));
      if (rcm == null) return;
      RemoteCache<String, String> n = op("getCache-near", () -> rcm.getCache("near"));
      RemoteCache<String, String> other = op("getCache-near-second-handle", () -> rcm.getCache("near"));
      if (n != null) {
         op("put", () -> n.put("nk1", "v1"));
         op("get-1", () -> n.get("nk1"));
         op("get-2-near", () -> n.get("nk1"));
         for (int i = 0; i < 20; i++) {
            int j = i;
            op("put-many-" + i, () -> n.put("nkm" + j, "v"));
            op("get-many-" + i, () -> n.get("nkm" + j));
         }
         run("sleep", () -> Thread.sleep(500));
         op("put-invalidate", () -> n.put("nk1", "v2"));
         run("sleep", () -> Thread.sleep(300));
         op("get-3", () -> n.get("nk1"));
         op("remove", () -> n.remove("nk1"));
      }
      stop(rcm);
   }

   static void protostream(String tag, String v, int port) {
      scenario(tag + "/protostream-marshaller");
      ConfigurationBuilder b = new ConfigurationBuilder();
      b.addServer().host(opts.getOrDefault("host", "127.0.0.1")).port(port);
      b.version(protocol(v)).connectionTimeout(5000).socketTimeout(5000).maxRetries(0);
      RemoteCacheManager rcm = op("start-protostream", () -> start(b));
      if (rcm == null) return;
      RemoteCache<Object, Object> c = op("getCache", () -> rcm.getCache("default"));
      if (c != null) {
         op("put-string", () -> c.put("pk", "pv"));
         op("get-string", () -> c.get("pk"));
         op("put-int-key", () -> c.put(42, 4242L));
         op("get-int-key", () -> c.get(42));
         op("put-bytes", () -> c.put("pb", new byte[]{1, 2, 3}));
         op("getWithMetadata", () -> c.getWithMetadata("pk"));
      }
      stop(rcm);
   }

   static void auth(String v, int authPort) {
      // Full mechanism matrix at --auth-full-versions (default: all auth versions); elsewhere the
      // three mechanism families only.
      String full = opts.get("auth-full-versions");
      boolean all = full == null || Arrays.asList(full.split(",")).contains(v);
      String[] mechs = all ? new String[]{"PLAIN", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-384", "SCRAM-SHA-512"}
            : new String[]{"DIGEST-MD5", "SCRAM-SHA-512", "PLAIN"};
      List<String[]> cases = new ArrayList<>();
      for (String m : mechs) cases.add(new String[]{m, "password"});
      cases.add(new String[]{"SCRAM-SHA-512", "wrong"});
      if (all) {
         cases.add(new String[]{"PLAIN", "wrong"});
         cases.add(new String[]{"DIGEST-MD5", "wrong"});
      }
      for (String[] cse : cases) {
         String mech = cse[0];
         boolean wrong = cse[1].equals("wrong");
         scenario("auth/" + v + "/" + mech + (wrong ? "-wrong-password" : ""));
         ConfigurationBuilder b = baseConfig(v, ClientIntelligence.HASH_DISTRIBUTION_AWARE, authPort);
         b.security().authentication().enable().saslMechanism(mech).username("admin").password(cse[1])
               .realm("default").serverName("infinispan");
         RemoteCacheManager rcm = op("start", () -> start(b));
         if (rcm == null) continue;
         RemoteCache<String, String> c = op("getCache", () -> rcm.getCache("default"));
         if (c != null) {
            op("put", () -> c.put("auth-" + mech, "v"));
            op("get", () -> c.get("auth-" + mech));
         }
         stop(rcm);
      }
      scenario("auth/" + v + "/no-credentials");
      RemoteCacheManager rcm = op("start", () -> start(baseConfig(v, ClientIntelligence.HASH_DISTRIBUTION_AWARE, authPort)));
      if (rcm != null) {
         RemoteCache<String, String> c = op("getCache", () -> rcm.getCache("default"));
         if (c != null) op("put-unauthenticated", () -> c.put("k", "v"));
         stop(rcm);
      }
   }

   // ------------------------------------------------------------------ misc

   static Map<String, String> parse(String[] args) {
      Map<String, String> m = new HashMap<>();
      for (int i = 0; i < args.length; i++) {
         if (!args[i].startsWith("--")) throw new IllegalArgumentException("unexpected " + args[i]);
         String k = args[i].substring(2);
         m.put(k, i + 1 < args.length && !args[i + 1].startsWith("--") ? args[++i] : "true");
      }
      return m;
   }

   /** Line-based client of the proxy control port. */
   static final class Control {
      private final BufferedReader in;
      private final PrintWriter out;

      Control(String host, int port) throws Exception {
         Socket s = new Socket(host, port);
         s.setSoTimeout(10000);
         in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
         out = new PrintWriter(s.getOutputStream(), true, StandardCharsets.UTF_8);
      }

      synchronized void send(String line) {
         try {
            out.print(line + "\n");
            out.flush();
            String reply = in.readLine();
            if (!"ok".equals(reply)) System.err.println("control: unexpected reply " + reply + " to " + line);
         } catch (Exception e) {
            System.err.println("control: " + e);
         }
      }
   }
}
