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
 * An Ironrod process of a test's own, for tests that need a configuration the shared server does
 * not have (authentication, TLS, small listener queues): the binary from {@code -Dironrod.bin} or
 * {@code IRONROD_BIN}, a TOML file in a temporary directory, a free loopback port (retried if
 * another process takes it first), and cleanup of the directory on close.
 */
final class IronrodProcess implements AutoCloseable {
   static final String HOST = "127.0.0.1";
   final Path dir;
   final int port;
   private final Process process;

   private IronrodProcess(Path dir, int port, Process process) {
      this.dir = dir;
      this.port = port;
      this.process = process;
   }

   /** The ironrod binary under test. */
   static String bin() {
      String bin = System.getProperty("ironrod.bin");
      if (bin == null || bin.isBlank()) bin = System.getenv("IRONROD_BIN");
      assertNotNull(bin, "set IRONROD_BIN (or -Dironrod.bin) to the ironrod binary");
      assertTrue(new File(bin).canExecute(), "not executable: " + bin);
      return bin;
   }

   static Path tempDir(String prefix) throws IOException {
      return Files.createTempDirectory(prefix);
   }

   /** A path as a TOML basic string's contents. */
   static String toml(Path p) {
      return p.toString().replace("\\", "\\\\").replace("\"", "\\\"");
   }

   /** Runs a command to completion in {@code dir}'s log, failing the test unless it exits 0. */
   static void run(Path dir, String... command) throws Exception {
      Path out = dir.resolve("command.log");
      Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile()).start();
      assertTrue(p.waitFor(30, TimeUnit.SECONDS), String.join(" ", command) + " did not finish");
      assertEquals(0, p.exitValue(), String.join(" ", command) + " failed: " + Files.readString(out));
   }

   /** Writes {@code ironrod user create NAME --password P --roles R} into {@code dir/users.toml}. */
   static Path createUser(Path dir, String user, String password, String roles) throws Exception {
      Path users = dir.resolve("users.toml");
      run(dir, bin(), "user", "create", user, "--password", password, "--roles", roles,
            "--users-file", users.toString());
      return users;
   }

   /** Starts ironrod with {@code body} after its {@code bind} line; owns {@code dir} from now on. */
   static IronrodProcess start(Path dir, String body) throws Exception {
      String bin = bin();
      for (int attempt = 0; attempt < 3; attempt++) {
         int port = freePort();
         Path config = dir.resolve("ironrod.toml");
         Files.writeString(config, "bind = \"" + HOST + ":" + port + "\"\n" + body + "\n", StandardCharsets.UTF_8);
         Process p = new ProcessBuilder(bin, "--config", config.toString(), "--log", "warn")
               .redirectErrorStream(true).redirectOutput(dir.resolve("server.log").toFile()).start();
         long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
         while (System.nanoTime() < deadline && p.isAlive()) {
            if (accepts(port)) return new IronrodProcess(dir, port, p);
            Thread.sleep(100);
         }
         p.destroyForcibly();
         p.waitFor(10, TimeUnit.SECONDS);
      }
      fail("ironrod did not start: " + Files.readString(dir.resolve("server.log")));
      return null;
   }

   /** A server with authentication: one user with role admin, and {@code extraToml} on top. */
   static IronrodProcess startSecured(String user, String password, String extraToml) throws Exception {
      Path dir = tempDir("ironrod-java-secured-");
      Path users = createUser(dir, user, password, "admin");
      return start(dir, extraToml + "\n[security]\nusers_file = \"" + toml(users) + "\"\n");
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
