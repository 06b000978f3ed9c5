package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.UUID;

import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.client.hotrod.exceptions.HotRodClientException;
import org.infinispan.commons.configuration.XMLStringConfiguration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Cache creation as Keycloak 26.4+ does it (a remote-cache configuration on the client makes
 * {@code getCache} send {@code @@cache@getorcreate} when the server does not know the cache) and
 * the administration API around it.
 */
class CacheAdminTest {

   static java.util.stream.Stream<ClientIntelligence> intelligences() {
      return Ironrod.intelligences();
   }

   static String xml(String name) {
      return "<distributed-cache name=\"" + name + "\" owners=\"2\" statistics=\"true\">"
            + "<encoding media-type=\"application/x-protostream\"/>"
            + "<expiration lifespan=\"-1\"/>"
            + "</distributed-cache>";
   }

   static String freshName(String what) {
      return "ironrod-conformance-" + what + "-" + UUID.randomUUID().toString().substring(0, 8);
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void getCacheCreatesAConfiguredMissingCache(ClientIntelligence intel) {
      String name = freshName("auto");
      ConfigurationBuilder b = Ironrod.config(intel, ProtocolVersion.PROTOCOL_VERSION_AUTO);
      b.remoteCache(name).configuration(xml(name));
      RemoteCacheManager rcm = new RemoteCacheManager(b.build());
      try {
         assertFalse(rcm.getCacheNames().contains(name), "not there before");
         RemoteCache<String, String> c = rcm.getCache(name);
         assertNotNull(c, "getCache creates the configured cache");
         c.put("k", "v");
         assertEquals("v", c.get("k"));
         assertEquals(1, c.size());
         assertTrue(rcm.getCacheNames().contains(name), "listed after creation");

         // A second manager without the configuration now finds it, with the data.
         RemoteCacheManager other = Ironrod.manager(intel);
         try {
            RemoteCache<String, String> c2 = other.getCache(name);
            assertNotNull(c2);
            assertEquals("v", c2.get("k"));
         } finally {
            other.stop();
         }
      } finally {
         try {
            rcm.administration().removeCache(name);
         } finally {
            rcm.stop();
         }
      }
   }

   @ParameterizedTest
   @MethodSource("intelligences")
   void administrationCreateGetOrCreateRemove(ClientIntelligence intel) {
      String name = freshName("admin");
      RemoteCacheManager rcm = Ironrod.manager(intel);
      try {
         assertNull(rcm.getCache(name), "unknown before creation");
         RemoteCache<String, String> c = rcm.administration().getOrCreateCache(name, new XMLStringConfiguration(xml(name)));
         assertNotNull(c);
         c.put("k", "v1");

         RemoteCache<String, String> again = rcm.administration().getOrCreateCache(name, new XMLStringConfiguration(xml(name)));
         assertNotNull(again);
         assertEquals("v1", again.get("k"), "getOrCreate of an existing cache keeps its data");

         assertThrows(HotRodClientException.class,
               () -> rcm.administration().createCache(name, new XMLStringConfiguration(xml(name))),
               "createCache of an existing cache fails");
         assertEquals("v1", c.get("k"), "the failed create left the cache alone");

         rcm.administration().removeCache(name);
         assertFalse(rcm.getCacheNames().contains(name), "not listed after removal");
         RemoteCacheManager fresh = Ironrod.manager(intel);
         try {
            assertNull(fresh.getCache(name), "unknown after removal");
         } finally {
            fresh.stop();
         }

         String name2 = freshName("create");
         RemoteCache<String, String> created = rcm.administration().createCache(name2, new XMLStringConfiguration(xml(name2)));
         assertNotNull(created);
         assertNull(created.get("k"), "a new cache is empty");
         created.put("k", "v");
         assertEquals("v", created.get("k"));
         rcm.administration().removeCache(name2);
      } finally {
         rcm.stop();
      }
   }
}
