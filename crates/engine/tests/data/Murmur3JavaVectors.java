import org.infinispan.commons.hash.MurmurHash3;
import java.nio.charset.StandardCharsets;
import java.util.*;

/**
 * Generates tests/data/murmur3_java.txt with Infinispan's own MurmurHash3 class.
 * Run (jar from `mvn dependency:get -Dartifact=org.infinispan:infinispan-commons:15.0.21.Final`):
 *   J=~/.m2/repository/org/infinispan/infinispan-commons/15.0.21.Final/infinispan-commons-15.0.21.Final.jar
 *   javac -cp $J Murmur3JavaVectors.java && java -cp $J:. Murmur3JavaVectors > murmur3_java.txt
 */
public class Murmur3JavaVectors {
    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }
    public static void main(String[] args) {
        MurmurHash3 h = MurmurHash3.getInstance();
        List<byte[]> keys = new ArrayList<>();
        keys.add(new byte[0]);
        Random r = new Random(9001);
        for (int len = 1; len <= 40; len++) {
            byte[] b = new byte[len];
            r.nextBytes(b);
            keys.add(b);
        }
        // bytes >= 0x80 only, lengths hitting every tail size
        for (int len : new int[]{1, 7, 8, 9, 15, 16, 17, 31}) {
            byte[] b = new byte[len];
            for (int i = 0; i < len; i++) b[i] = (byte) (0x80 + ((i * 37) & 0x7f));
            keys.add(b);
        }
        // Keycloak-like UUID string keys, UTF-8
        Random u = new Random(26);
        for (int i = 0; i < 10; i++) {
            UUID id = new UUID(u.nextLong(), u.nextLong());
            keys.add(id.toString().getBytes(StandardCharsets.UTF_8));
        }
        keys.add("task::clearExpiredEvents".getBytes(StandardCharsets.UTF_8));
        keys.add("cluster-start-time".getBytes(StandardCharsets.UTF_8));
        System.out.println("# org.infinispan:infinispan-commons:15.0.21.Final (infinispan-commons-15.0.21.Final.jar), "
            + "org.infinispan.commons.hash.MurmurHash3.getInstance().hash(byte[]), java " + System.getProperty("java.version")
            + "; lines: hexkey int, \"-\" = empty key");
        for (byte[] k : keys) System.out.println((k.length == 0 ? "-" : hex(k)) + " " + h.hash(k));
    }
}
