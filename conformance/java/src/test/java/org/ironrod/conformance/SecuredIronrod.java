package org.ironrod.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A second Ironrod process for tests that need authentication: a users file written by
 * {@code ironrod user create} (one user, role admin) and extra TOML appended to the configuration.
 */
final class SecuredIronrod implements AutoCloseable {
   static final String HOST = "127.0.0.1";
   final Path dir;
   final int port;
   private final Process process;

   private SecuredIronrod(Path dir, int port, Process process) {
      this.dir = dir;
      this.port = port;
      this.process = process;
   }

   static SecuredIronrod start(String user, String password, String extraToml) throws Exception {
      String bin = System.getProperty("ironrod.bin");
      if (bin == null || bin.isBlank()) bin = System.getenv("IRONROD_BIN");
      assertNotNull(bin, "set IRONROD_BIN (or -Dironrod.bin) to the ironrod binary");
      assertTrue(new File(bin).canExecute(), "not executable: " + bin);
      Path dir = Files.createTempDirectory("ironrod-java-secured-");
      Path users = dir.resolve("users.toml");
      Process create = new ProcessBuilder(bin, "user", "create", user, "--password", password,
            "--roles", "admin", "--users-file", users.toString())
            .redirectErrorStream(true).redirectOutput(dir.resolve("user.log").toFile()).start();
      assertTrue(create.waitFor(30, TimeUnit.SECONDS), "ironrod user create did not finish");
      assertEquals(0, create.exitValue(), Files.readString(dir.resolve("user.log")));
      for (int attempt = 0; attempt < 3; attempt++) {
         int port = freePort();
         Path config = dir.resolve("ironrod.toml");
         String quotedUsers = users.toString().replace("\\", "\\\\").replace("\"", "\\\"");
         Files.writeString(config, "bind = \"" + HOST + ":" + port + "\"\n" + extraToml
               + "\n[security]\nusers_file = \"" + quotedUsers + "\"\n", StandardCharsets.UTF_8);
         Process p = new ProcessBuilder(bin, "--config", config.toString(), "--log", "warn")
               .redirectErrorStream(true).redirectOutput(dir.resolve("server.log").toFile()).start();
         long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
         while (System.nanoTime() < deadline && p.isAlive()) {
            if (accepts(port)) return new SecuredIronrod(dir, port, p);
            Thread.sleep(100);
         }
         p.destroyForcibly();
         p.waitFor(10, TimeUnit.SECONDS);
      }
      fail("ironrod did not start: " + Files.readString(dir.resolve("server.log")));
      return null;
   }

   @Override
   public void close() throws Exception {
      process.destroy();
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
         process.destroyForcibly();
         process.waitFor(10, TimeUnit.SECONDS);
      }
      try (Stream<Path> s = Files.walk(dir)) {
         s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
   }

   private static int freePort() throws IOException {
      try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName(HOST))) {
         return s.getLocalPort();
      }
   }

   private static boolean accepts(int p) {
      try (Socket s = new Socket()) {
         s.connect(new InetSocketAddress(HOST, p), 500);
         return true;
      } catch (IOException e) {
         return false;
      }
   }
}
