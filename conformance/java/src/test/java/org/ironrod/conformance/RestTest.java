package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;

import org.infinispan.client.rest.RestCacheClient;
import org.infinispan.client.rest.RestClient;
import org.infinispan.client.rest.RestResponse;
import org.infinispan.client.rest.configuration.RestClientConfigurationBuilder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Ironrod's HTTP side driven by Infinispan's own REST client (the same line as the Hot Rod client
 * under test), as operators' tooling and Keycloak's site health check use it: authentication in
 * AUTO mode (the client follows the server's challenge), entries, cache actions, container health
 * with Infinispan's JSON field names, and Prometheus metrics.
 */
class RestTest {
   private static IronrodProcess server;

   @BeforeAll
   static void start() throws Exception {
      server = IronrodProcess.startSecured("admin", "secret", "");
   }

   @AfterAll
   static void stop() throws Exception {
      if (server != null) server.close();
   }

   private static RestClient client(String password) {
      RestClientConfigurationBuilder b = new RestClientConfigurationBuilder();
      b.addServer().host(IronrodProcess.HOST).port(server.port);
      b.security().authentication().enable().username("admin").password(password);
      return RestClient.forConfiguration(b.build());
   }

   /** 14.0 names the accessors getStatus/getBody, 15.0 and later status/body. */
   private static int status(RestResponse r) throws Exception {
      return (Integer) accessor(r, "status", "getStatus");
   }

   private static String body(RestResponse r) throws Exception {
      return (String) accessor(r, "body", "getBody");
   }

   private static Object accessor(RestResponse r, String name, String legacy) throws Exception {
      try {
         return RestResponse.class.getMethod(name).invoke(r);
      } catch (NoSuchMethodException e) {
         return RestResponse.class.getMethod(legacy).invoke(r);
      }
   }

   private static RestResponse await(java.util.concurrent.CompletionStage<RestResponse> s) throws Exception {
      return s.toCompletableFuture().get(30, TimeUnit.SECONDS);
   }

   @Test
   void entriesAndCacheActionsThroughTheChallenge() throws Exception {
      try (RestClient c = client("secret")) {
         RestCacheClient cache = c.cache("work");
         assertEquals(204, status(await(cache.put("rest-key", "rest-value"))));
         RestResponse got = await(cache.get("rest-key"));
         assertEquals(200, status(got));
         assertEquals("rest-value", body(got));
         assertEquals(200, status(await(cache.size())));
         RestResponse stats = await(cache.stats());
         assertEquals(200, status(stats));
         String statsBody = body(stats);
         assertTrue(statsBody.contains("\"current_number_of_entries\""), statsBody);
         assertEquals(204, status(await(cache.remove("rest-key"))));
         assertEquals(404, status(await(cache.get("rest-key"))));
         assertEquals(204, status(await(cache.clear())));
      }
   }

   @Test
   void wrongPasswordIsRefused() throws Exception {
      try (RestClient c = client("wrong")) {
         assertEquals(401, status(await(c.cache("work").get("k"))));
      }
   }

   @Test
   void healthAsKeycloakBenchmarkReadsIt() throws Exception {
      try (RestClient c = client("secret")) {
         RestResponse health = await(c.raw().get("/rest/v2/cache-managers/default/health"));
         assertEquals(200, status(health));
         String body = body(health);
         assertTrue(body.contains("\"cluster_health\""), body);
         assertTrue(body.contains("\"health_status\":\"HEALTHY\""), body);
         assertTrue(body.contains("\"cache_health\""), body);
         RestResponse status = await(c.raw().get("/rest/v2/container/health/status"));
         assertEquals(200, status(status));
         assertEquals("HEALTHY", body(status).trim());
         RestResponse info = await(c.raw().get("/rest/v2/container"));
         assertEquals(200, status(info));
         String infoBody = body(info);
         assertTrue(infoBody.contains("\"local_site\":null"), infoBody);
      }
   }

   @Test
   void metricsScrape() throws Exception {
      try (RestClient c = client("secret")) {
         await(c.cache("sessions").put("m", "1"));
         await(c.cache("sessions").get("m"));
         RestResponse m = await(c.metrics().metrics());
         assertEquals(200, status(m));
         String scraped = body(m);
         assertTrue(scraped.contains("infinispan_statistics_hits{cache_manager=\"default\",cache=\"sessions\"}"),
               scraped);
      }
   }
}
