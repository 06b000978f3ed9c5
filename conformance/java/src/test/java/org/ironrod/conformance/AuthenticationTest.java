package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * SASL authentication with the real client, configured as Keycloak configures it, against a second
 * Ironrod started here with a users file written by {@code ironrod user create} and TLS optional
 * on the same port: DIGEST-MD5 in clear (the remote-store XML: realm {@code default}, server name
 * {@code infinispan}), SCRAM-SHA-512 in clear and over TLS as Keycloak 26 sets it up (hostname
 * validation, SNI = the host, a truststore holding the test CA), and PLAIN over TLS each
 * authenticate and read/write through a pool of 16 connections; a wrong password fails the first
 * operation; a client without credentials gets ISPN006017; an observer is refused a write with
 * ISPN000287. Certificates come fresh from {@code ironrod-test-certs} (built next to the server).
 *
 * <p>The server binary comes from {@code -Dironrod.bin} or {@code IRONROD_BIN} (run.sh exports it).
 */
class AuthenticationTest {
   private static final String HOST = "127.0.0.1";
   private static final String CACHE = "sessions";
   private static IronrodProcess server;
   private static Path dir;
   private static int port;
   /** The host name the test certificate is valid for: what Keycloak sets as SNI. */
   private static final String TLS_HOST = "localhost";
   private static Path truststore;

   @BeforeAll
   static void startServer() throws Exception {
      String bin = IronrodProcess.bin();
      dir = IronrodProcess.tempDir("ironrod-java-auth-");
      Path users = IronrodProcess.createUser(dir, "admin", "secret", "admin");
      IronrodProcess.createUser(dir, "reader", "secret", "observer");
      String tls = "";
      File certs = new File(new File(bin).getParentFile(), "ironrod-test-certs");
      if (certs.canExecute()) {
         IronrodProcess.run(dir, certs.getPath(), dir.toString());
         truststore = dir.resolve("truststore.p12");
         writeTruststore(dir.resolve("ca.pem"), truststore);
         tls = "[tls]\nmode = \"optional\"\ncertificate = \"" + IronrodProcess.toml(dir.resolve("server.pem"))
               + "\"\nkey = \"" + IronrodProcess.toml(dir.resolve("server-key.pem")) + "\"\n";
      }
      server = IronrodProcess.start(dir, "[security]\nusers_file = \"" + IronrodProcess.toml(users)
            + "\"\nfailure_delay_ms = 0\n" + tls);
      port = server.port;
   }

   @AfterAll
   static void stopServer() throws Exception {
      if (server != null) {
         server.close();
         server = null;
      }
   }

   /** A PKCS#12 truststore holding the test CA, as an operator would give Keycloak. */
   private static void writeTruststore(Path caPem, Path target) throws Exception {
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      try (InputStream in = Files.newInputStream(caPem)) {
         ks.setCertificateEntry("ironrod-test-ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
      }
      try (OutputStream out = Files.newOutputStream(target)) {
         ks.store(out, "changeit".toCharArray());
      }
   }

   private static ConfigurationBuilder base(ClientIntelligence intel) {
      ConfigurationBuilder b = new ConfigurationBuilder();
      b.addServer().host(HOST).port(port);
      b.clientIntelligence(intel);
      b.version(ProtocolVersion.PROTOCOL_VERSION_AUTO);
      b.marshaller(Ironrod.MARSHALLER);
      b.connectionTimeout(5_000).socketTimeout(15_000);
      b.maxRetries(0);
      b.connectionPool().maxActive(16);
      return b;
   }

   /** Keycloak's set-up: mechanism, user, password, realm "default", server name "infinispan". */
   private static ConfigurationBuilder authenticated(ClientIntelligence intel, String mech, String password) {
      return authenticated(intel, mech, "admin", password, false);
   }

   /**
    * With {@code tls}, as Keycloak 26 does it: the server addressed by host name, TLS with that
    * name as SNI and hostname validation on, a truststore with the CA.
    */
   private static ConfigurationBuilder authenticated(ClientIntelligence intel, String mech, String user,
         String password, boolean tls) {
      ConfigurationBuilder b = base(intel);
      b.security().authentication().enable().saslMechanism(mech).username(user).password(password)
            .realm("default").serverName("infinispan");
      if (tls) {
         Assumptions.assumeTrue(truststore != null, "ironrod-test-certs not built next to IRONROD_BIN");
         b.servers().clear();
         b.addServer().host(TLS_HOST).port(port);
         b.security().ssl().enable().sniHostName(TLS_HOST).hostnameValidation(true)
               .trustStoreFileName(truststore.toString()).trustStoreType("PKCS12")
               .trustStorePassword("changeit".toCharArray());
      }
      return b;
   }

   /** Mechanism and transport: DIGEST-MD5 and SCRAM-SHA-512 in clear, SCRAM-SHA-512 and PLAIN in TLS. */
   static Stream<Arguments> mechanisms() {
      return Stream.of(Arguments.of("DIGEST-MD5", false), Arguments.of("SCRAM-SHA-512", false),
                  Arguments.of("SCRAM-SHA-512", true), Arguments.of("PLAIN", true))
            .flatMap(a -> Ironrod.intelligences().map(i -> Arguments.of(a.get()[0], a.get()[1], i)));
   }

   private static String chain(Throwable t) {
      StringBuilder sb = new StringBuilder();
      for (Throwable c = t; c != null; c = c.getCause()) {
         sb.append(c.getClass().getName()).append(": ").append(c.getMessage()).append(" | ");
         for (Throwable s : c.getSuppressed()) sb.append("suppressed ").append(s).append(" | ");
      }
      return sb.toString();
   }

   @ParameterizedTest(name = "{0} tls={1} {2}")
   @MethodSource("mechanisms")
   void authenticatesAndReadsWritesThroughAPool(String mech, boolean tls, ClientIntelligence intel) throws Exception {
      RemoteCacheManager rcm = new RemoteCacheManager(authenticated(intel, mech, "admin", "secret", tls).build());
      ExecutorService pool = Executors.newFixedThreadPool(16);
      try {
         RemoteCache<String, String> cache = rcm.getCache(CACHE);
         assertNotNull(cache, "cache " + CACHE);
         String prefix = Ironrod.unique("auth-" + mech);
         cache.put(prefix + "first", "v");
         assertEquals("v", cache.get(prefix + "first"));
         // Several connections at once: 16 threads, each putting and reading back its own keys.
         List<Future<?>> futures = new ArrayList<>();
         for (int t = 0; t < 16; t++) {
            int id = t;
            futures.add(pool.submit(() -> {
               for (int i = 0; i < 20; i++) {
                  String k = prefix + id + "-" + i;
                  cache.put(k, "v" + id + "-" + i);
                  assertEquals("v" + id + "-" + i, cache.get(k));
               }
               return null;
            }));
         }
         for (Future<?> f : futures) f.get(60, TimeUnit.SECONDS);
         assertEquals("v15-19", cache.get(prefix + "15-19"));
      } finally {
         pool.shutdownNow();
         rcm.stop();
      }
   }

   @ParameterizedTest(name = "{0} tls={1} {2}")
   @MethodSource("mechanisms")
   void wrongPasswordFails(String mech, boolean tls, ClientIntelligence intel) {
      ConfigurationBuilder b = authenticated(intel, mech, "admin", "wrong", tls);
      RemoteCacheManager rcm = null;
      try {
         rcm = new RemoteCacheManager(b.build());
         RemoteCache<String, String> cache = rcm.getCache(CACHE);
         assertNotNull(cache, "getCache returned null instead of failing the authentication");
         cache.put(Ironrod.unique("auth-wrong") + "k", "v");
         fail(mech + " with a wrong password was accepted");
      } catch (AssertionError e) {
         throw e;
      } catch (Exception expected) {
         // Any exception on the first operation; every line reports the server's refusal.
         String all = chain(expected);
         assertTrue(all.contains("ISPN006024"), "expected ISPN006024 (invalid credentials), got: " + all);
      } finally {
         if (rcm != null) rcm.stop();
      }
   }

   @Test
   void plainIsNotOfferedInClear() {
      RemoteCacheManager rcm = null;
      try {
         rcm = new RemoteCacheManager(authenticated(ClientIntelligence.BASIC, "PLAIN", "secret").build());
         RemoteCache<String, String> cache = rcm.getCache(CACHE);
         assertNotNull(cache);
         cache.put(Ironrod.unique("auth-plain-clear") + "k", "v");
         fail("PLAIN in clear was accepted");
      } catch (AssertionError e) {
         throw e;
      } catch (Exception expected) {
         String all = chain(expected);
         assertTrue(all.contains("PLAIN") || all.contains("ISPN006025"), "expected PLAIN to be refused, got: " + all);
      } finally {
         if (rcm != null) rcm.stop();
      }
   }

   @Test
   void tlsWithAWrongSniHostNameFailsHostnameValidation() {
      ConfigurationBuilder b = authenticated(ClientIntelligence.BASIC, "SCRAM-SHA-512", "admin", "secret", true);
      b.security().ssl().sniHostName("elsewhere.test");
      RemoteCacheManager rcm = null;
      try {
         rcm = new RemoteCacheManager(b.build());
         RemoteCache<String, String> cache = rcm.getCache(CACHE);
         assertNotNull(cache);
         cache.put(Ironrod.unique("auth-sni") + "k", "v");
         fail("a certificate for localhost passed hostname validation for elsewhere.test");
      } catch (AssertionError e) {
         throw e;
      } catch (Exception expected) {
         // The handshake fails on the client's side.
      } finally {
         if (rcm != null) rcm.stop();
      }
   }

   @Test
   void anObserverReadsOverTlsAndIsRefusedAWriteWithIspn000287() {
      RemoteCacheManager rcm = new RemoteCacheManager(
            authenticated(ClientIntelligence.HASH_DISTRIBUTION_AWARE, "SCRAM-SHA-512", "reader", "secret", true).build());
      try {
         RemoteCache<String, String> cache = rcm.getCache(CACHE);
         assertEquals(null, cache.get(Ironrod.unique("authz") + "absent"));
         try {
            cache.put(Ironrod.unique("authz") + "k", "v");
            fail("an observer was allowed to write");
         } catch (AssertionError e) {
            throw e;
         } catch (Exception expected) {
            String all = chain(expected);
            assertTrue(all.contains("ISPN000287: Unauthorized access: subject 'Subject with principal(s): [reader, "
                  + "RolePrincipal{name='observer'}") && all.contains("lacks 'WRITE' permission"),
                  "expected ISPN000287 for WRITE, got: " + all);
         }
      } finally {
         rcm.stop();
      }
   }

   @Test
   void noCredentialsIsRefusedWithIspn006017() {
      RemoteCacheManager rcm = null;
      try {
         rcm = new RemoteCacheManager(base(ClientIntelligence.BASIC).build());
         RemoteCache<String, String> cache = rcm.getCache(CACHE);
         assertNotNull(cache, "getCache without credentials returned null before any operation");
         cache.put(Ironrod.unique("auth-none") + "k", "v");
         fail("put without credentials was accepted");
      } catch (AssertionError e) {
         throw e;
      } catch (Exception e) {
         String all = chain(e);
         assertTrue(all.contains("ISPN006017"), "expected ISPN006017, got: " + all);
      } finally {
         if (rcm != null) rcm.stop();
      }
   }
}
