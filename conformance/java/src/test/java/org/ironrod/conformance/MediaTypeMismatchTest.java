package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.HashMap;
import java.util.Map;

import org.infinispan.client.hotrod.ProtocolVersion;
import org.infinispan.client.hotrod.RemoteCache;
import org.infinispan.client.hotrod.RemoteCacheManager;
import org.infinispan.client.hotrod.configuration.ClientIntelligence;
import org.infinispan.client.hotrod.configuration.ConfigurationBuilder;
import org.infinispan.commons.marshall.UTF8StringMarshaller;
import org.infinispan.commons.util.CloseableIterator;
import org.junit.jupiter.api.Test;

/**
 * Clients whose key media type differs from the cache's storage type (protocol-spec/compatibility.md
 * C19): Ironrod stores keys as sent, so its segments and the client's may disagree; iteration must
 * still return every entry exactly once without the client's segment tracking failing.
 */
class MediaTypeMismatchTest {

   /**
    * A hash-aware client with UTF8StringMarshaller (text/plain keys) on {@code default}, which
    * reports application/x-protostream, hashes each key converted to the storage type
    * ({@code DataFormat.server()}, used by {@code SegmentKeyTracker}). Ironrod hashes the raw
    * bytes, so a segment it reports finished mid-iteration could still deliver keys the client
    * places in it ({@code IllegalStateException: Segment N already completed}); for such clients
    * the server reports finished segments only at the end. Found by this suite before the fix.
    */
   @Test
   void hashAwareIterationWithTextPlainClientOnProtostreamCache() {
      ConfigurationBuilder b = new ConfigurationBuilder();
      b.addServer().host(Ironrod.host()).port(Ironrod.port());
      b.clientIntelligence(ClientIntelligence.HASH_DISTRIBUTION_AWARE);
      b.version(ProtocolVersion.PROTOCOL_VERSION_AUTO);
      b.marshaller(new UTF8StringMarshaller());
      b.maxRetries(0);
      RemoteCacheManager rcm = new RemoteCacheManager(b.build());
      try {
         RemoteCache<String, String> c = rcm.getCache("default");
         String p = Ironrod.unique("mediatype");
         Map<String, String> all = new HashMap<>();
         for (int i = 0; i < 200; i++) all.put(p + i, "v" + i);
         c.putAll(all);
         Map<String, String> seen = new HashMap<>();
         try (CloseableIterator<Map.Entry<Object, Object>> it = c.retrieveEntries(null, 10)) {
            while (it.hasNext()) {
               Map.Entry<Object, Object> e = it.next();
               if (((String) e.getKey()).startsWith(p)) seen.put((String) e.getKey(), (String) e.getValue());
            }
         }
         assertEquals(all, seen);
         for (String k : all.keySet()) c.remove(k);
      } finally {
         rcm.stop();
      }
   }
}
