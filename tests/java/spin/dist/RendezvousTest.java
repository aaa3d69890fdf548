package spin.dist;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import spin.backend.DeviceSpec;

/**
 * The rendezvous on loopback: between this JVM and a second one ({@link RendezvousPeer}), in both
 * roles; a peer that never comes, a world-size mismatch, a rank claimed twice, a master that is
 * not there or does not answer, a stray connection. Every wait is bounded by a short timeout.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RendezvousTest {
    private static World world(int worldSize, int firstRank, int count, int port, Duration timeout) {
        List<DeviceSpec> devices = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            devices.add(DeviceSpec.CPU);
        }
        return new World(worldSize, firstRank, devices, 0, 1, "127.0.0.1", port, timeout, World.Source.FLAGS);
    }

    /**
     * Runs {@code task} on a thread of its own: the common pool has one thread on a 2-core machine,
     * and two blocked clients in it would wait for each other.
     */
    private static <T> CompletableFuture<T> async(java.util.function.Supplier<T> task) {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                result.complete(task.get());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        }, "rendezvous-test-peer");
        t.setDaemon(true);
        t.start();
        return result;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static byte[] ncclLikeId(long seed) {
        byte[] id = new byte[128];
        new Random(seed).nextBytes(id);
        return id;
    }

    /** A second JVM running {@link RendezvousPeer} on this test's classpath. */
    private static Process peer(String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), RendezvousPeer.class.getName()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectErrorStream(true).start();
    }

    private record Exit(int code, String output) {}

    private static Exit finish(Process p) throws Exception {
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the peer JVM did not finish");
        return new Exit(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim());
    }

    @Test
    void aSecondProcessGetsTheMastersPayload() throws Exception {
        int port = freePort();
        byte[] id = ncclLikeId(1);
        // this JVM holds ranks 0..1 (two local devices), the other JVM rank 2
        Process other = peer("3", "2", "1", Integer.toString(port), "30000");
        byte[] served = Rendezvous.serve(world(3, 0, 2, port, Duration.ofSeconds(30)), id);
        assertArrayEquals(id, served);
        Exit exit = finish(other);
        assertEquals(new Exit(0, "payload " + HexFormat.of().formatHex(id)), exit);
    }

    @Test
    void aClientStartedBeforeTheMasterWaitsForIt() throws Exception {
        int port = freePort();
        byte[] id = ncclLikeId(2);
        CompletableFuture<byte[]> joined = async(() -> {
            try {
                return Rendezvous.join(world(2, 1, 1, port, Duration.ofSeconds(30)));
            } catch (RendezvousException e) {
                throw new RuntimeException(e);
            }
        });
        Thread.sleep(700); // the client is already retrying when the master's JVM starts
        Process master = peer("2", "0", "1", Integer.toString(port), "30000", HexFormat.of().formatHex(id));
        assertArrayEquals(id, joined.get(60, TimeUnit.SECONDS));
        assertEquals(new Exit(0, "payload " + HexFormat.of().formatHex(id)), finish(master));
    }

    @Test
    void aMissingPeerTimesOutNamingItsRanksOnEverySide() throws Exception {
        int port = freePort();
        // world of 5: this JVM rank 0, the other JVM ranks 1..2, ranks 3..4 never come
        Process other = peer("5", "1", "2", Integer.toString(port), "30000");
        long start = System.nanoTime();
        RendezvousException e = assertThrows(RendezvousException.class,
                () -> Rendezvous.serve(world(5, 0, 1, port, Duration.ofSeconds(3)), ncclLikeId(3)));
        double seconds = (System.nanoTime() - start) / 1e9;
        assertTrue(seconds >= 2.9 && seconds < 20, "the timeout was 3 s, took " + seconds);
        String expected = "rendezvous timed out after 3 s: ranks 3..4 never came (3 of 5 ranks arrived); start the missing "
                + "processes with the same master address and port (127.0.0.1:" + port + "), or raise --rendezvous-timeout";
        assertEquals(expected, e.getMessage());
        Exit exit = finish(other);
        assertEquals(new Exit(3, "failed the rendezvous master at 127.0.0.1:" + port + " failed: " + expected), exit);
    }

    @Test
    void aWorldSizeMismatchFailsBothSides() throws Exception {
        int port = freePort();
        CompletableFuture<String> client = async(() -> assertThrows(RendezvousException.class,
                () -> Rendezvous.join(world(3, 1, 1, port, Duration.ofSeconds(20)))).getMessage());
        RendezvousException server = assertThrows(RendezvousException.class,
                () -> Rendezvous.serve(world(2, 0, 1, port, Duration.ofSeconds(20)), ncclLikeId(4)));
        assertTrue(server.getMessage().startsWith("the process holding rank 1 ("), server.getMessage());
        assertTrue(server.getMessage().endsWith(") says the world has 3 ranks, but the master says 2; give every node the same "
                + "--nnodes and --devices/--gpus (or the same launcher settings)"), server.getMessage());
        assertEquals("the rendezvous master at 127.0.0.1:" + port + " failed: " + server.getMessage(), client.get(30, TimeUnit.SECONDS));
    }

    @Test
    void aRankClaimedTwiceFailsEveryPeer() throws Exception {
        int port = freePort();
        World twice = world(3, 1, 1, port, Duration.ofSeconds(20));
        CompletableFuture<String> first = async(
                () -> assertThrows(RendezvousException.class, () -> Rendezvous.join(twice)).getMessage());
        CompletableFuture<String> second = async(
                () -> assertThrows(RendezvousException.class, () -> Rendezvous.join(twice)).getMessage());
        RendezvousException server = assertThrows(RendezvousException.class,
                () -> Rendezvous.serve(world(3, 0, 1, port, Duration.ofSeconds(20)), ncclLikeId(5)));
        assertTrue(server.getMessage().contains(": rank 1 is already held by "), server.getMessage());
        assertTrue(server.getMessage().endsWith("; give every node its own --node-rank (or every process its own RANK)"));
        String told = "the rendezvous master at 127.0.0.1:" + port + " failed: " + server.getMessage();
        assertEquals(told, first.get(30, TimeUnit.SECONDS));
        assertEquals(told, second.get(30, TimeUnit.SECONDS));
    }

    @Test
    void aMasterThatIsNotThereOrSilentIsReportedWithinTheTimeout() throws Exception {
        int port = freePort();
        RendezvousException absent = assertThrows(RendezvousException.class,
                () -> Rendezvous.join(world(2, 1, 1, port, Duration.ofSeconds(1))));
        assertTrue(absent.getMessage().startsWith("could not reach the rendezvous master at 127.0.0.1:" + port + " within 1 s ("),
                absent.getMessage());
        assertTrue(absent.getMessage().endsWith("; start node 0 (the process holding rank 0), check --master-addr/MASTER_ADDR and "
                + "--master-port/MASTER_PORT, or raise --rendezvous-timeout"), absent.getMessage());
        try (ServerSocket silent = new ServerSocket(port)) {
            CompletableFuture<Socket> held = async(() -> {
                try {
                    return silent.accept();
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            RendezvousException mute = assertThrows(RendezvousException.class,
                    () -> Rendezvous.join(world(2, 1, 1, port, Duration.ofSeconds(1))));
            assertEquals("reached the rendezvous master at 127.0.0.1:" + port + " but heard nothing back within 1 s; the master may be "
                    + "stuck, or waiting for ranks that never came (see node 0's log)", mute.getMessage());
            held.get(10, TimeUnit.SECONDS).close();
        }
    }

    @Test
    void aStrayConnectionIsIgnoredAndAPortInUseIsReported() throws Exception {
        int port = freePort();
        byte[] id = ncclLikeId(6);
        CompletableFuture<byte[]> served = async(() -> {
            try {
                return Rendezvous.serve(world(2, 0, 1, port, Duration.ofSeconds(20)), id);
            } catch (RendezvousException e) {
                throw new RuntimeException(e);
            }
        });
        // something else connects first and writes junk: the master must ignore it
        Socket stray = null;
        for (int attempt = 0; attempt < 100 && stray == null; attempt++) {
            try {
                stray = new Socket("127.0.0.1", port);
            } catch (IOException notYet) {
                Thread.sleep(50);
            }
        }
        try (Socket s = stray) {
            OutputStream out = s.getOutputStream();
            out.write("GET / HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            assertArrayEquals(id, Rendezvous.join(world(2, 1, 1, port, Duration.ofSeconds(20))));
        }
        assertArrayEquals(id, served.get(30, TimeUnit.SECONDS));
        try (ServerSocket taken = new ServerSocket(port)) {
            RendezvousException inUse = assertThrows(RendezvousException.class,
                    () -> Rendezvous.serve(world(2, 0, 1, port, Duration.ofSeconds(5)), id));
            assertTrue(inUse.getMessage().startsWith("cannot listen for the rendezvous on port " + port + " ("), inUse.getMessage());
            assertTrue(inUse.getMessage().endsWith("another program holds it: choose a free port with --master-port or MASTER_PORT, "
                    + "the same on every node"), inUse.getMessage());
        }
    }

    @Test
    void aPeerOfAnotherProtocolVersionIsRefused() throws Exception {
        int port = freePort();
        CompletableFuture<RendezvousException> server = async(() -> assertThrows(RendezvousException.class,
                () -> Rendezvous.serve(world(2, 0, 1, port, Duration.ofSeconds(20)), ncclLikeId(7))));
        Socket s = null;
        for (int attempt = 0; attempt < 100 && s == null; attempt++) {
            try {
                s = new Socket("127.0.0.1", port);
            } catch (IOException notYet) {
                Thread.sleep(50);
            }
        }
        try (Socket peer = s) {
            DataOutputStream out = new DataOutputStream(peer.getOutputStream());
            out.writeInt(Rendezvous.MAGIC);
            out.writeInt(Rendezvous.VERSION + 1);
            out.flush();
            assertEquals("a peer speaks rendezvous protocol version " + (Rendezvous.VERSION + 1) + ", the master speaks "
                    + Rendezvous.VERSION + "; run the same spin on every node", server.get(30, TimeUnit.SECONDS).getMessage());
        }
    }

    @Test
    void aSingleProcessWorldNeedsNoNetwork() throws Exception {
        try (ServerSocket taken = new ServerSocket(0)) {
            // the port is in use: a world whose ranks are all local must not try to listen on it
            World local = world(4, 0, 4, taken.getLocalPort(), Duration.ofSeconds(1));
            byte[] id = ncclLikeId(8);
            assertArrayEquals(id, Rendezvous.exchange(local, () -> id));
        }
    }

    @Test
    void exchangeServesOnRankZeroAndJoinsElsewhere() throws Exception {
        int port = freePort();
        byte[] id = ncclLikeId(9);
        CompletableFuture<byte[]> rank1 = async(() -> {
            try {
                return Rendezvous.exchange(world(2, 1, 1, port, Duration.ofSeconds(20)), () -> {
                    throw new AssertionError("only rank 0 makes the payload");
                });
            } catch (RendezvousException e) {
                throw new RuntimeException(e);
            }
        });
        assertArrayEquals(id, Rendezvous.exchange(world(2, 0, 1, port, Duration.ofSeconds(20)), () -> id));
        try {
            assertArrayEquals(id, rank1.get(30, TimeUnit.SECONDS));
        } catch (ExecutionException e) {
            throw new AssertionError(e.getCause());
        }
    }
}
