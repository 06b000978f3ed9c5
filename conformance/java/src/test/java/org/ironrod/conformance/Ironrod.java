package org.ironrod.conformance;

import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.commons.hash.MurmurHash3;
import org.infinispan.commons.marshall.Marshaller;
import org.infinispan.commons.marshall.ProtoStreamMarshaller;
import org.infinispan.commons.util.Version;

/**
 * Shared plumbing: where the server is, how a client is configured, segment arithmetic.
 *
 * <p>Keys and values are plain strings marshalled with the client's own
 * {@link ProtoStreamMarshaller} (the default marshaller of the 14.0, 15.0 and 16.0 lines; strings
 * travel as protobuf {@code WrappedMessage}s and need no schema). That is Keycloak 26's set-up:
 * the client's media type, {@code application/x-protostream}, equals the storage media type the
 * server reports for the Keycloak caches, so the client sends bytes the server keeps as they are
 * and both sides hash the same bytes to find a key's segment. (A client whose media type differs
 * from the storage type is covered by {@link MediaTypeMismatchTest}.)
 */
final class Ironrod {
   private Ironrod() {
   }

   /** The caches an out-of-the-box Ironrod serves. */
   static final String[] KEYCLOAK_CACHES = {"work", "sessions", "clientSessions", "offlineSessions",
         "offlineClientSessions", "loginFailures", "actionTokens", "authenticationSessions"};

   /** Stateless for strings; shared so tests can compute the bytes the client sends. */
   static final Marshaller MARSHALLER = new ProtoStreamMarshaller();

   /** The bytes the client sends for {@code key}. */
   static byte[] keyBytes(String key) {
      try {
         return MARSHALLER.objectToByteBuffer(key);
      } catch (Exception e) {
         throw new AssertionError("cannot marshall " + key, e);
      }
   }

   static String host() {
      return setting("ironrod.host", "IRONROD_HOST", "127.0.0.1");
   }

   static int port() {
      return Integer.parseInt(setting("ironrod.port", "IRONROD_PORT", "11222"));
   }

   private static String setting(String prop, String env, String dflt) {
      String v = System.getProperty(prop);
      if (v == null || v.isBlank()) v = System.getenv(env);
      return v == null || v.isBlank() ? dflt : v.trim();
   }

   /** Major version of the client line on the class path (14, 15 or 16). */
   static int clientMajor() {
      return Integer.parseInt(Version.getVersion().split("\\.")[0]);
   }

   static String clientVersion() {
      return Version.getVersion();
   }

   /** The intelligences every test runs with. */
   static Stream<ClientIntelligence> intelligences() {
      return Stream.of(ClientIntelligence.BASIC, ClientIntelligence.HASH_DISTRIBUTION_AWARE);
   }

   static ConfigurationBuilder config(ClientIntelligence intel, ProtocolVersion version) {
      ConfigurationBuilder b = new ConfigurationBuilder();
      b.addServer().host(host()).port(port());
      b.clientIntelligence(intel);
      b.version(version);
      b.marshaller(MARSHALLER);
      b.connectionTimeout(5_000).socketTimeout(15_000);
      // No transparent retries: a server error or a dropped connection must fail the test.
      b.maxRetries(0);
      b.connectionPool().maxActive(16);
      return b;
   }

   static RemoteCacheManager manager(ClientIntelligence intel) {
      return new RemoteCacheManager(config(intel, ProtocolVersion.PROTOCOL_VERSION_AUTO).build());
   }

   /** One manager per intelligence, shared by the tests of one class; closed by {@link #closeAll}. */
   static final class Managers implements AutoCloseable {
      private final Map<ClientIntelligence, RemoteCacheManager> byIntel = new ConcurrentHashMap<>();

      RemoteCacheManager get(ClientIntelligence intel) {
         return byIntel.computeIfAbsent(intel, Ironrod::manager);
      }

      <K, V> RemoteCache<K, V> cache(ClientIntelligence intel, String name) {
         RemoteCache<K, V> c = get(intel).getCache(name);
         if (c == null) throw new AssertionError("server does not know cache '" + name + "'");
         return c;
      }

      @Override
      public void close() {
         for (RemoteCacheManager m : byIntel.values()) m.stop();
         byIntel.clear();
      }
   }

   /** A key prefix unique to one test invocation, so tests never see each other's entries. */
   static String unique(String what) {
      return what + "-" + UUID.randomUUID().toString().substring(0, 8) + "-";
   }

   // ------------------------------------------------------------------ segments

   /**
    * Infinispan's key-to-segment mapping for a key marshalled to {@code bytes}: MurmurHash3 of the
    * key bytes, made positive, divided by the segment size ceil(2^31 / numSegments).
    */
   static int segmentOf(byte[] bytes, int numSegments) {
      int hash = MurmurHash3.getInstance().hash(bytes) & Integer.MAX_VALUE;
      int segmentSize = (int) Math.ceil((double) (1L << 31) / numSegments);
      return hash / segmentSize;
   }

   /** Segment of {@code key} as the client marshals it. */
   static int segmentOf(String key, int numSegments) {
      return segmentOf(keyBytes(key), numSegments);
   }

   /**
    * The client's own consistent hash for {@code cacheName}, or null when the client has none
    * (BASIC intelligence). Internal API: 14.0/15.0 keep it on the ChannelFactory, 16.0 on the
    * OperationDispatcher.
    */
   static Object clientConsistentHash(RemoteCacheManager rcm, String cacheName) {
      try {
         Object holder;
         Object arg;
         if (clientMajor() >= 16) {
            Method m = RemoteCacheManager.class.getDeclaredMethod("getOperationDispatcher");
            m.setAccessible(true);
            holder = m.invoke(rcm);
            arg = cacheName;
         } else {
            holder = RemoteCacheManager.class.getMethod("getChannelFactory").invoke(rcm);
            arg = cacheName.getBytes(StandardCharsets.UTF_8);
         }
         Method gch = holder.getClass().getMethod("getConsistentHash", arg.getClass());
         return gch.invoke(holder, arg);
      } catch (ReflectiveOperationException e) {
         throw new AssertionError("cannot reach the client's consistent hash", e);
      }
   }

   /** Segment of {@code key} according to the client's consistent hash object. */
   static int clientSegmentOf(Object consistentHash, String key) {
      try {
         return (int) consistentHash.getClass().getMethod("getSegment", Object.class)
               .invoke(consistentHash, (Object) keyBytes(key));
      } catch (ReflectiveOperationException e) {
         throw new AssertionError("cannot call getSegment on " + consistentHash.getClass(), e);
      }
   }

   static <T> java.util.Set<T> setOf(Iterable<T> it) {
      java.util.Set<T> s = new java.util.TreeSet<>();
      it.forEach(s::add);
      return Collections.unmodifiableSet(s);
   }
}
