package org.ironrod.conformance;

import java.io.IOException;
import java.nio.file.Files;
import java.security.Security;
import java.security.Principal;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.security.auth.callback.NameCallback;
import javax.security.auth.callback.PasswordCallback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.sasl.AuthorizeCallback;
import javax.security.sasl.RealmCallback;
import javax.security.sasl.SaslException;
import javax.security.sasl.SaslServer;
import javax.security.sasl.SaslServerFactory;

import org.infinispan.commons.dataconversion.MediaType;
import org.infinispan.configuration.cache.CacheMode;
import org.infinispan.configuration.cache.ConfigurationBuilder;
import org.infinispan.configuration.global.GlobalConfigurationBuilder;
import org.infinispan.manager.DefaultCacheManager;
import org.infinispan.manager.EmbeddedCacheManager;
import org.infinispan.server.core.security.sasl.SaslAuthenticator;
import org.infinispan.server.hotrod.HotRodServer;
import org.infinispan.server.hotrod.configuration.HotRodServerConfigurationBuilder;
import org.infinispan.transaction.LockingMode;
import org.infinispan.transaction.TransactionMode;
import org.infinispan.transaction.lookup.EmbeddedTransactionManagerLookup;
import org.infinispan.util.concurrent.IsolationLevel;
import org.wildfly.security.auth.callback.AvailableRealmsCallback;
import org.wildfly.security.auth.callback.CredentialCallback;
import org.wildfly.security.auth.callback.EvidenceVerifyCallback;
import org.wildfly.security.credential.PasswordCredential;
import org.wildfly.security.evidence.PasswordGuessEvidence;
import org.wildfly.security.password.WildFlyElytronPasswordProvider;
import org.wildfly.security.password.interfaces.ClearPassword;
import org.wildfly.security.sasl.digest.DigestServerFactory;
import org.wildfly.security.sasl.plain.PlainSaslServerFactory;
import org.wildfly.security.sasl.scram.ScramSaslServerFactory;

/**
 * Runs the reference Hot Rod endpoint in-process, for wire captures and differential tests.
 *
 * <pre>
 * java -cp ... org.ironrod.conformance.ReferenceServer [--host H] [--port P] [--auth-port A]
 *          [--user U] [--password W] [--storage MEDIATYPE] [--tx-storage MEDIATYPE] [--state-dir DIR] [--exit-on-stdin-eof]
 * </pre>
 *
 * Prints {@code READY <port>} on stdout for each endpoint once it is listening, then
 * {@code READY-ALL}. Stops on SIGTERM/SIGINT or when stdin is closed if {@code --exit-on-stdin-eof}.
 *
 * Caches: {@code default} (local, the default cache), {@code tx} (transactional, pessimistic,
 * repeatable read), {@code multimap}, {@code near} (for near-cache clients), {@code text}
 * (text/plain storage); all others use the {@code --storage} media type (default protostream). Counters and multimaps are
 * provided by the counter and multimap modules on the class path.
 */
public final class ReferenceServer {

   static final String[] SASL_MECHS = {
         "PLAIN", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-384", "SCRAM-SHA-512"};

   public static void main(String[] args) throws Exception {
      Map<String, String> opts = parse(args);
      String host = opts.getOrDefault("host", "127.0.0.1");
      int port = Integer.parseInt(opts.getOrDefault("port", "11322"));
      int authPort = Integer.parseInt(opts.getOrDefault("auth-port", "0"));
      String user = opts.getOrDefault("user", "admin");
      String password = opts.getOrDefault("password", "password");
      String storage = opts.getOrDefault("storage", MediaType.APPLICATION_PROTOSTREAM_TYPE);
      // The Java client's PREPARE_TX carries no media types, so its keys only match what it read
      // earlier when the tx cache stores bytes as they arrive.
      String txStorage = opts.getOrDefault("tx-storage", MediaType.APPLICATION_OCTET_STREAM_TYPE);
      boolean exitOnEof = opts.containsKey("exit-on-stdin-eof");
      String stateDir = opts.get("state-dir");
      if (stateDir == null) {
         stateDir = Files.createTempDirectory("ironrod-reference-state").toString();
      }
      // Elytron's SCRAM and DIGEST mechanisms need its password provider to derive their digests.
      Security.addProvider(WildFlyElytronPasswordProvider.getInstance());

      EmbeddedCacheManager cm = createCacheManager(storage, txStorage, stateDir);
      List<HotRodServer> servers = new ArrayList<>();

      HotRodServerConfigurationBuilder plain = new HotRodServerConfigurationBuilder()
            .name("hotrod-plain").host(host).port(port).defaultCacheName("default");
      servers.add(start(plain, cm, port));

      if (authPort > 0) {
         HotRodServerConfigurationBuilder secured = new HotRodServerConfigurationBuilder()
               .name("hotrod-auth").host(host).port(authPort).defaultCacheName("default");
         secured.authentication().enable()
               .sasl()
               .serverName("infinispan")
               .addMechanisms(SASL_MECHS)
               .addMechProperty("com.sun.security.sasl.digest.realm", "default")
               .authenticator(new SingleUserAuthenticator(user, password.toCharArray()));
         servers.add(start(secured, cm, authPort));
      }
      System.out.println("READY-ALL");
      System.out.flush();

      CountDownLatch done = new CountDownLatch(1);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
         for (HotRodServer s : servers) {
            try { s.stop(); } catch (Throwable ignored) { }
         }
         try { cm.stop(); } catch (Throwable ignored) { }
         done.countDown();
      }));
      if (exitOnEof) {
         try {
            while (System.in.read() >= 0) { /* wait for EOF */ }
         } catch (IOException ignored) { }
         System.exit(0);
      }
      done.await();
   }

   private static HotRodServer start(HotRodServerConfigurationBuilder b, EmbeddedCacheManager cm, int port) {
      HotRodServer server = new HotRodServer();
      server.start(b.build(), cm);
      System.out.println("READY " + port);
      System.out.flush();
      return server;
   }

   static EmbeddedCacheManager createCacheManager(String storage, String txStorage, String stateDir) {
      GlobalConfigurationBuilder global = new GlobalConfigurationBuilder().nonClusteredDefault();
      global.cacheManagerName("ironrod-reference").defaultCacheName("default");
      global.jmx().disable();
      // Global state lets PERSISTENT counters be defined; the directory is private to this run.
      global.globalState().enable().persistentLocation(stateDir).sharedPersistentLocation(stateDir)
            .temporaryLocation(stateDir);
      EmbeddedCacheManager cm = new DefaultCacheManager(global.build(), false);

      ConfigurationBuilder local = new ConfigurationBuilder();
      local.clustering().cacheMode(CacheMode.LOCAL);
      local.encoding().mediaType(storage);
      local.statistics().enable();
      cm.defineConfiguration("default", local.build());
      cm.defineConfiguration("multimap", local.build());
      cm.defineConfiguration("near", local.build());

      ConfigurationBuilder text = new ConfigurationBuilder();
      text.clustering().cacheMode(CacheMode.LOCAL);
      text.encoding().mediaType(MediaType.TEXT_PLAIN_TYPE);
      text.statistics().enable();
      cm.defineConfiguration("text", text.build());

      ConfigurationBuilder tx = new ConfigurationBuilder();
      tx.clustering().cacheMode(CacheMode.LOCAL);
      tx.encoding().mediaType(txStorage);
      tx.statistics().enable();
      tx.locking().isolationLevel(IsolationLevel.REPEATABLE_READ);
      tx.transaction()
            .transactionMode(TransactionMode.TRANSACTIONAL)
            .lockingMode(LockingMode.PESSIMISTIC)
            .useSynchronization(false)
            .transactionManagerLookup(new EmbeddedTransactionManagerLookup());
      tx.transaction().recovery().enable();
      cm.defineConfiguration("tx", tx.build());

      cm.start();
      for (String name : new String[]{"default", "multimap", "near", "text", "tx"}) {
         cm.getCache(name);
      }
      return cm;
   }

   private static Map<String, String> parse(String[] args) {
      Map<String, String> m = new HashMap<>();
      for (int i = 0; i < args.length; i++) {
         String a = args[i];
         if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
         String k = a.substring(2);
         int eq = k.indexOf('=');
         if (eq >= 0) {
            m.put(k.substring(0, eq), k.substring(eq + 1));
         } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
            m.put(k, args[++i]);
         } else {
            m.put(k, "true");
         }
      }
      return m;
   }

   /** Creates Elytron SASL servers that accept exactly one user with a clear-text password. */
   static final class SingleUserAuthenticator implements SaslAuthenticator {
      private final String user;
      private final char[] password;
      private final List<SaslServerFactory> factories = Arrays.asList(
            new PlainSaslServerFactory(), new DigestServerFactory(), new ScramSaslServerFactory());

      SingleUserAuthenticator(String user, char[] password) {
         this.user = user;
         this.password = password;
      }

      @Override
      public SaslServer createSaslServer(String mechanism, List<Principal> principals, String protocol,
                                         String serverName, Map<String, String> props) throws SaslException {
         Map<String, Object> p = new HashMap<>(props == null ? Map.of() : props);
         for (SaslServerFactory f : factories) {
            SaslServer s = f.createSaslServer(mechanism, protocol, serverName, p, new Handler());
            if (s != null) return s;
         }
         return null;
      }

      private final class Handler implements CallbackHandler {
         private String name;

         @Override
         public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
            for (Callback cb : callbacks) {
               if (cb instanceof NameCallback) {
                  NameCallback nc = (NameCallback) cb;
                  name = nc.getName() != null ? nc.getName() : nc.getDefaultName();
               } else if (cb instanceof PasswordCallback) {
                  if (user.equals(name)) ((PasswordCallback) cb).setPassword(password.clone());
               } else if (cb instanceof EvidenceVerifyCallback) {
                  EvidenceVerifyCallback ev = (EvidenceVerifyCallback) cb;
                  boolean ok = user.equals(name) && ev.getEvidence() instanceof PasswordGuessEvidence
                        && Arrays.equals(((PasswordGuessEvidence) ev.getEvidence()).getGuess(), password);
                  ev.setVerified(ok);
               } else if (cb instanceof CredentialCallback) {
                  CredentialCallback cc = (CredentialCallback) cb;
                  if (user.equals(name)
                        && cc.isCredentialTypeSupported(PasswordCredential.class, ClearPassword.ALGORITHM_CLEAR)) {
                     cc.setCredential(new PasswordCredential(
                           ClearPassword.createRaw(ClearPassword.ALGORITHM_CLEAR, password.clone())));
                  }
               } else if (cb instanceof RealmCallback) {
                  RealmCallback rc = (RealmCallback) cb;
                  rc.setText(rc.getDefaultText() != null ? rc.getDefaultText() : "default");
               } else if (cb instanceof AvailableRealmsCallback) {
                  ((AvailableRealmsCallback) cb).setRealmNames("default");
               } else if (cb instanceof AuthorizeCallback) {
                  AuthorizeCallback ac = (AuthorizeCallback) cb;
                  ac.setAuthorized(ac.getAuthenticationID() != null
                        && ac.getAuthenticationID().equals(ac.getAuthorizationID()));
               } else {
                  throw new UnsupportedCallbackException(cb);
               }
            }
         }
      }
   }
}
