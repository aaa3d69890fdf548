package spin.dist;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Joins the processes of a {@link World} once at start: the process holding rank 0 listens on
 * MASTER_ADDR:MASTER_PORT, every other process connects and says which global ranks it holds, and
 * when every rank of the world has arrived the server hands each of them the same payload (the
 * 128-byte NCCL unique id that rank 0 made), which both sides then return. A world whose ranks
 * are all in one process needs no network and gets its payload at once.
 *
 * <p><b>Waiting.</b> The server waits {@link World#rendezvousTimeout()} from when it starts
 * listening; on timeout it fails naming the ranks that never came, and tells the peers that did
 * come why. A client retries connecting (the server may start later) for the timeout from its own
 * start, then waits up to the timeout again for the server's answer, which always comes within
 * that long from a live server (the server's own deadline started before the connection); so a
 * client fails within twice the timeout, saying whether it could not reach the master or heard
 * nothing back from it.
 *
 * <p><b>Protocol</b> (big-endian, {@link DataOutputStream}). Every message starts with {@link #MAGIC}
 * and {@link #VERSION}. Hello, client to server: world size, first rank, rank count, and a label
 * (host and pid) for messages. Answer, server to client: a status byte, then either the payload
 * (length, bytes) or an error message. The server refuses a peer of another version, another world
 * size, ranks outside the world or ranks another process already holds, and fails the whole
 * rendezvous (every side gets the message: a half-joined run cannot train). A connection that
 * does not start with the magic (a port scanner, another program on the port) is closed and
 * ignored.
 */
public final class Rendezvous {
    /** "SPRV": a spin rendezvous message. */
    public static final int MAGIC = 0x53505256;
    public static final int VERSION = 1;
    /** The largest payload a peer accepts, so that garbage on the wire cannot ask for gigabytes. */
    public static final int MAX_PAYLOAD_BYTES = 1 << 20;
    private static final byte OK = 0, FAILED = 1;
    /** Pause between connection attempts while the server is not up yet. */
    private static final long RETRY_MILLIS = 200;
    /** How long an accepted connection may take to say hello, so that a silent one cannot stall the server. */
    private static final long HELLO_MILLIS = 10_000;

    private Rendezvous() {}

    /**
     * The payload of rank 0, on every process: made by {@code payload} on the process that serves
     * the rendezvous and received by every other one.
     */
    public static byte[] exchange(World world, Supplier<byte[]> payload) throws RendezvousException {
        return world.servesRendezvous() ? serve(world, payload.get()) : join(world);
    }

    /**
     * Serves the rendezvous of {@code world} from the process that holds rank 0: listens on the
     * master port (every interface), waits for every rank, sends {@code payload} to every peer.
     *
     * @return {@code payload}
     * @throws RendezvousException when the port cannot be listened on, a peer disagrees about the
     *     world, or the timeout passes first (naming the ranks that never came)
     */
    public static byte[] serve(World world, byte[] payload) throws RendezvousException {
        if (!world.servesRendezvous()) {
            throw new IllegalArgumentException("ranks " + world.firstRank() + ".. do not serve the rendezvous; the process holding "
                    + "rank 0 does");
        }
        if (payload.length > MAX_PAYLOAD_BYTES) {
            throw new IllegalArgumentException("a rendezvous payload holds at most " + MAX_PAYLOAD_BYTES + " bytes, not " + payload.length);
        }
        if (world.isSingleProcess()) {
            return payload.clone();
        }
        long deadline = System.nanoTime() + world.rendezvousTimeout().toNanos();
        boolean[] arrived = new boolean[world.worldSize()];
        String[] heldBy = new String[world.worldSize()];
        for (int r : world.ranks()) {
            arrived[r] = true;
            heldBy[r] = "the master";
        }
        List<Socket> peers = new ArrayList<>();
        try (ServerSocket server = listen(world)) {
            while (missing(arrived) > 0) {
                long left = millisLeft(deadline);
                if (left <= 0) {
                    throw fail(peers, null, "rendezvous timed out after " + seconds(world.rendezvousTimeout()) + ": "
                            + describeRanks(missingRanks(arrived)) + " never came (" + arrivedCount(arrived) + " of "
                            + world.worldSize() + " ranks arrived); start the missing processes with the same master address and "
                            + "port (" + world.masterAddr() + ":" + world.masterPort() + "), or raise --rendezvous-timeout");
                }
                server.setSoTimeout((int) Math.min(left, Integer.MAX_VALUE));
                Socket peer;
                try {
                    peer = server.accept();
                } catch (SocketTimeoutException e) {
                    continue; // the loop's deadline check reports it
                }
                Hello hello;
                try {
                    peer.setSoTimeout((int) Math.max(1, Math.min(HELLO_MILLIS, millisLeft(deadline))));
                    hello = Hello.read(new DataInputStream(peer.getInputStream()));
                } catch (IOException e) {
                    hello = null; // the peer vanished or was silent before saying who it is: as if it never came
                }
                if (hello == null) {
                    closeQuietly(peer); // not a spin peer (or wrong magic): ignore it
                    continue;
                }
                String refusal = refusal(hello, world, arrived, heldBy);
                if (refusal != null) {
                    throw fail(peers, peer, refusal);
                }
                for (int r = hello.firstRank; r < hello.firstRank + hello.count; r++) {
                    arrived[r] = true;
                    heldBy[r] = hello.label;
                }
                peers.add(peer);
            }
            for (Socket peer : peers) {
                try {
                    DataOutputStream out = new DataOutputStream(peer.getOutputStream());
                    header(out);
                    out.writeByte(OK);
                    out.writeInt(payload.length);
                    out.write(payload);
                    out.flush();
                } catch (IOException e) {
                    throw fail(peers, null, "the process holding " + label(peer) + " went away before it got the rendezvous answer ("
                            + e.getMessage() + "); restart the run");
                }
            }
        } catch (BindException e) {
            throw new RendezvousException("cannot listen for the rendezvous on port " + world.masterPort() + " (" + e.getMessage()
                    + "); another program holds it: choose a free port with --master-port or MASTER_PORT, the same on every node");
        } catch (RendezvousException e) {
            throw e;
        } catch (IOException e) {
            throw fail(peers, null, "the rendezvous on port " + world.masterPort() + " failed: " + e.getMessage());
        } finally {
            peers.forEach(Rendezvous::closeQuietly);
        }
        return payload.clone();
    }

    /**
     * Joins the rendezvous of {@code world} from a process that does not hold rank 0: connects to
     * the master (retrying until it is up), says which ranks it holds, and returns the payload.
     *
     * @throws RendezvousException when the master cannot be reached within the timeout, does not
     *     answer within it, or refuses this process (with the master's reason)
     */
    public static byte[] join(World world) throws RendezvousException {
        if (world.servesRendezvous()) {
            throw new IllegalArgumentException("the process holding rank 0 serves the rendezvous; it does not join it");
        }
        String master = world.masterAddr() + ":" + world.masterPort();
        Duration timeout = world.rendezvousTimeout();
        long deadline = System.nanoTime() + timeout.toNanos();
        String lastError = null;
        while (true) {
            long left = millisLeft(deadline);
            if (left <= 0) {
                throw new RendezvousException("could not reach the rendezvous master at " + master + " within " + seconds(timeout)
                        + (lastError == null ? "" : " (" + lastError + ")") + "; start node 0 (the process holding rank 0), check "
                        + "--master-addr/MASTER_ADDR and --master-port/MASTER_PORT, or raise --rendezvous-timeout");
            }
            Socket socket = new Socket();
            try {
                socket.connect(new InetSocketAddress(world.masterAddr(), world.masterPort()), (int) Math.max(1, Math.min(left, 5_000)));
            } catch (IOException e) {
                closeQuietly(socket);
                lastError = e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
                sleep(Math.min(RETRY_MILLIS, Math.max(1, millisLeft(deadline))));
                continue;
            }
            try (socket) {
                DataOutputStream out = new DataOutputStream(socket.getOutputStream());
                new Hello(VERSION, world.worldSize(), world.firstRank(), world.localDeviceCount(), self()).write(out);
                out.flush();
                socket.setSoTimeout((int) Math.min(timeout.toMillis(), Integer.MAX_VALUE));
                return answer(new DataInputStream(socket.getInputStream()), master, timeout);
            } catch (SocketTimeoutException e) {
                throw new RendezvousException("reached the rendezvous master at " + master + " but heard nothing back within "
                        + seconds(timeout) + "; the master may be stuck, or waiting for ranks that never came (see node 0's log)");
            } catch (EOFException e) {
                throw new RendezvousException("the rendezvous master at " + master + " closed the connection without an answer; "
                        + "see node 0's log");
            } catch (RendezvousException e) {
                throw e;
            } catch (IOException e) {
                throw new RendezvousException("the rendezvous with the master at " + master + " failed: " + e.getMessage()
                        + "; see node 0's log");
            }
        }
    }

    private static byte[] answer(DataInputStream in, String master, Duration timeout) throws IOException {
        int magic = in.readInt();
        if (magic != MAGIC) {
            throw new RendezvousException("something other than a spin rendezvous master answers at " + master
                    + "; choose another --master-port/MASTER_PORT (the same on every node)");
        }
        int version = in.readInt();
        if (version != VERSION) {
            throw new RendezvousException("the rendezvous master at " + master + " speaks protocol version " + version
                    + ", this spin speaks " + VERSION + "; run the same spin on every node");
        }
        byte status = in.readByte();
        if (status == FAILED) {
            throw new RendezvousException("the rendezvous master at " + master + " failed: " + in.readUTF());
        }
        if (status != OK) {
            throw new RendezvousException("the rendezvous master at " + master + " sent an unknown answer " + status
                    + "; run the same spin on every node");
        }
        int length = in.readInt();
        if (length < 0 || length > MAX_PAYLOAD_BYTES) {
            throw new RendezvousException("the rendezvous master at " + master + " sent a payload of " + length
                    + " bytes; run the same spin on every node");
        }
        byte[] payload = new byte[length];
        in.readFully(payload);
        return payload;
    }

    /** What a connecting process says about itself. */
    private record Hello(int version, int worldSize, int firstRank, int count, String label) {
        void write(DataOutputStream out) throws IOException {
            header(out);
            out.writeInt(worldSize);
            out.writeInt(firstRank);
            out.writeInt(count);
            out.writeUTF(label);
        }

        /** Null when the connection does not start with the magic: not a spin peer. */
        static Hello read(DataInputStream in) throws IOException {
            if (in.readInt() != MAGIC) {
                return null;
            }
            int version = in.readInt();
            if (version != VERSION) {
                return new Hello(version, 0, 0, 0, "a peer");
            }
            return new Hello(version, in.readInt(), in.readInt(), in.readInt(), in.readUTF());
        }
    }

    /** Why the server refuses {@code hello}, or null when it fits the world. */
    private static String refusal(Hello hello, World world, boolean[] arrived, String[] heldBy) {
        if (hello.version != VERSION) {
            return "a peer speaks rendezvous protocol version " + hello.version + ", the master speaks " + VERSION
                    + "; run the same spin on every node";
        }
        String who = "the process holding " + describeRanks(hello.firstRank, hello.count) + " (" + hello.label + ")";
        if (hello.worldSize != world.worldSize()) {
            return who + " says the world has " + hello.worldSize + " ranks, but the master says " + world.worldSize()
                    + "; give every node the same --nnodes and --devices/--gpus (or the same launcher settings)";
        }
        if (hello.count < 1 || hello.firstRank < 0 || (long) hello.firstRank + hello.count > world.worldSize()) {
            return who + ": those ranks are outside the world of " + world.worldSize() + " ranks; check --node-rank and --nnodes";
        }
        for (int r = hello.firstRank; r < hello.firstRank + hello.count; r++) {
            if (arrived[r]) {
                return who + ": rank " + r + " is already held by " + heldBy[r] + "; give every node its own --node-rank "
                        + "(or every process its own RANK)";
            }
        }
        return null;
    }

    private static ServerSocket listen(World world) throws IOException {
        ServerSocket server = new ServerSocket();
        server.setReuseAddress(true); // a restarted master can take the port of one that just died
        server.bind(new InetSocketAddress(world.masterPort()), world.worldSize());
        return server;
    }

    /** Tells every peer (and {@code offender}) why the rendezvous failed, closes them, and returns the server's exception. */
    private static RendezvousException fail(List<Socket> peers, Socket offender, String message) {
        List<Socket> all = new ArrayList<>(peers);
        if (offender != null) {
            all.add(offender);
        }
        for (Socket s : all) {
            try {
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                header(out);
                out.writeByte(FAILED);
                out.writeUTF(message.length() > 16_000 ? message.substring(0, 16_000) : message);
                out.flush();
            } catch (IOException ignored) {
                // best effort: that peer is gone, and will fail on its own
            }
            closeQuietly(s);
        }
        return new RendezvousException(message);
    }

    private static void header(DataOutputStream out) throws IOException {
        out.writeInt(MAGIC);
        out.writeInt(VERSION);
    }

    private static int missing(boolean[] arrived) {
        return arrived.length - arrivedCount(arrived);
    }

    private static int arrivedCount(boolean[] arrived) {
        int n = 0;
        for (boolean a : arrived) {
            n += a ? 1 : 0;
        }
        return n;
    }

    private static List<Integer> missingRanks(boolean[] arrived) {
        List<Integer> out = new ArrayList<>();
        for (int r = 0; r < arrived.length; r++) {
            if (!arrived[r]) {
                out.add(r);
            }
        }
        return out;
    }

    /** "rank 3", "ranks 8..15", "ranks 2, 5..7" */
    static String describeRanks(List<Integer> ranks) {
        StringBuilder s = new StringBuilder(ranks.size() == 1 ? "rank " : "ranks ");
        for (int i = 0; i < ranks.size();) {
            int j = i;
            while (j + 1 < ranks.size() && ranks.get(j + 1) == ranks.get(j) + 1) {
                j++;
            }
            s.append(i == 0 ? "" : ", ").append(ranks.get(i)).append(j > i ? ".." + ranks.get(j) : "");
            i = j + 1;
        }
        return s.toString();
    }

    private static String describeRanks(int first, int count) {
        return count == 1 ? "rank " + first : "ranks " + first + ".." + (first + count - 1);
    }

    private static String label(Socket peer) {
        return String.valueOf(peer.getRemoteSocketAddress());
    }

    private static String self() {
        String host;
        try {
            host = java.net.InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "unknown host";
        }
        return host + " pid " + ProcessHandle.current().pid();
    }

    private static long millisLeft(long deadlineNanos) {
        return (deadlineNanos - System.nanoTime()) / 1_000_000;
    }

    private static String seconds(Duration d) {
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() / 1000.0 + " s";
    }

    private static void sleep(long millis) throws RendezvousException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RendezvousException("interrupted while waiting for the rendezvous master", e);
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing a socket that failed; nothing to do
        }
    }
}
