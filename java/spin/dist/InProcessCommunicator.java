package spin.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * A {@link Communicator} whose ranks are threads of one JVM: for CPU backends and emulated CUDA
 * devices, and for testing the distributed code without a cluster.
 *
 * <p>Each collective is a rendezvous of all ranks. Data goes through host memory: every rank reads
 * its own input with {@link Backend#read}, the ranks exchange the host arrays, and every rank
 * writes its own output with {@link Backend#write}. That is correct for any backend (a device
 * rank's read waits for the device work producing the input, and its write is queued before the
 * work that uses the output), but slow for real devices; NCCL is the device path. Several ranks
 * may share one backend as long as that backend may be called
 * from several threads.
 *
 * <p>BF16 values are read as their exact fp32 widening and written back, which rounds nothing, so
 * gathers and broadcasts move them bit for bit.
 */
public final class InProcessCommunicator implements Communicator {
    private final Group group;
    private final int rank;
    private final Backend backend;
    private final CollectiveArguments arguments;

    private InProcessCommunicator(Group group, int rank, Backend backend) {
        this.group = group;
        this.rank = rank;
        this.backend = backend;
        this.arguments = new CollectiveArguments(backend, rank, group.worldSize);
    }

    /**
     * One communicator per backend, rank r bound to {@code backends.get(r)}, sharing one group whose
     * collectives throw a {@link CommunicatorException} after waiting {@code timeout} for the
     * other ranks.
     */
    public static List<InProcessCommunicator> create(List<? extends Backend> backends, Duration timeout) {
        if (backends.isEmpty()) {
            throw new IllegalArgumentException("a group needs at least one rank");
        }
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive, not " + timeout);
        }
        Group group = new Group(backends.size(), timeout);
        List<InProcessCommunicator> ranks = new ArrayList<>(backends.size());
        for (int r = 0; r < backends.size(); r++) {
            ranks.add(new InProcessCommunicator(group, r, backends.get(r)));
        }
        return List.copyOf(ranks);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return group.worldSize;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public void allGather(Tensor out, Tensor in) {
        Contribution[] all = exchange(() -> {
            arguments.allGather(out, in);
            return new Contribution("allGather", in.dtype(), in.size(), -1, backend.read(in));
        });
        int n = (int) in.size();
        float[] gathered = new float[worldSize() * n];
        for (int r = 0; r < all.length; r++) {
            System.arraycopy(all[r].values, 0, gathered, r * n, n);
        }
        writeOwn(out, gathered);
    }

    @Override
    public void reduceScatter(Tensor out, Tensor in) {
        Contribution[] all = exchange(() -> {
            arguments.reduceScatter(out, in);
            return new Contribution("reduceScatter", DType.F32, out.size(), -1, backend.read(in));
        });
        int n = (int) out.size();
        writeOwn(out, rankOrderSum(all, rank * n, n));
    }

    @Override
    public void allReduce(Tensor inOut) {
        Contribution[] all = exchange(() -> {
            arguments.allReduce(inOut);
            if (inOut.dtype() == DType.F64) {
                return new Contribution("allReduce", DType.F64, inOut.size(), -1, null, backend.readDoubles(inOut));
            }
            return new Contribution("allReduce", DType.F32, inOut.size(), -1, backend.read(inOut));
        });
        if (inOut.dtype() == DType.F64) {
            double[] sum = all[0].doubles.clone();
            for (int r = 1; r < all.length; r++) {
                for (int i = 0; i < sum.length; i++) {
                    sum[i] += all[r].doubles[i];
                }
            }
            writeOwn(() -> backend.write(inOut, sum));
        } else {
            writeOwn(inOut, rankOrderSum(all, 0, (int) inOut.size()));
        }
    }

    @Override
    public void broadcast(Tensor inOut, int root) {
        Contribution[] all = exchange(() -> {
            arguments.broadcast(inOut, root);
            // Only the root's values travel; the others would be read for nothing.
            float[] values = rank == root ? backend.read(inOut) : null;
            return new Contribution("broadcast", inOut.dtype(), inOut.size(), root, values);
        });
        if (rank != root) {
            writeOwn(inOut, all[root].values);
        }
    }

    @Override
    public void barrier() {
        exchange(() -> new Contribution("barrier", null, 0, -1, null));
    }

    @Override
    public void abort(Throwable cause) {
        group.fail(new Failure("rank " + rank + " failed: " + cause, rank, List.of(), cause));
    }

    @Override
    public String toString() {
        return "rank " + rank + " of " + worldSize() + " on " + backend.name();
    }

    /** What one rank brought to a collective: its arguments, to check they agree, and its data. */
    private record Contribution(String operation, DType dtype, long size, int root, float[] values, double[] doubles) {
        Contribution(String operation, DType dtype, long size, int root, float[] values) {
            this(operation, dtype, size, root, values, null);
        }

        String arguments() {
            return operation + (dtype == null ? "" : "(" + dtype + " x " + size + (root < 0 ? "" : ", root " + root) + ")");
        }
    }

    private interface LocalPart {
        Contribution prepare();
    }

    /**
     * Runs this rank's local part (argument checks and reading its input), meets the other ranks,
     * and returns every rank's contribution in rank order after checking that they agree. A local
     * failure stops the group before it is rethrown, so that no rank waits for this one.
     */
    private Contribution[] exchange(LocalPart local) {
        group.throwIfStopped();
        Contribution mine;
        try {
            mine = local.prepare();
        } catch (RuntimeException | Error e) {
            abort(e);
            throw e;
        }
        Contribution[] all = group.rendezvous(rank, mine);
        for (Contribution other : all) {
            if (!other.arguments().equals(mine.arguments())) {
                StringBuilder each = new StringBuilder();
                for (int r = 0; r < all.length; r++) {
                    each.append(r == 0 ? "" : ", ").append("rank ").append(r).append(": ").append(all[r].arguments());
                }
                throw new IllegalArgumentException("ranks disagree on the collective: " + each);
            }
        }
        return all;
    }

    private void writeOwn(Tensor out, float[] values) {
        writeOwn(() -> backend.write(out, values));
    }

    /** Writes this rank's result; a failure stops the group before it is rethrown. */
    private void writeOwn(Runnable write) {
        try {
            write.run();
        } catch (RuntimeException | Error e) {
            abort(e);
            throw e;
        }
    }

    /** Element {@code offset + i} of every contribution, summed in fp32 from rank 0 up, for i in [0, n). */
    private static float[] rankOrderSum(Contribution[] all, int offset, int n) {
        float[] sum = Arrays.copyOfRange(all[0].values, offset, offset + n);
        for (int r = 1; r < all.length; r++) {
            float[] values = all[r].values;
            for (int i = 0; i < n; i++) {
                sum[i] += values[offset + i];
            }
        }
        return sum;
    }







    /** The first failure of a group, as every rank reports it. */
    private record Failure(String message, int failedRank, List<Integer> missingRanks, Throwable cause) {
        CommunicatorException exception() {
            return new CommunicatorException(message, failedRank, missingRanks, cause);
        }
    }

    /** The ranks' meeting point: one rendezvous at a time, reused collective after collective. */
    private static final class Group {
        final int worldSize;
        private final long timeoutNanos;
        private final Duration timeout;
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition changed = lock.newCondition();
        private final Contribution[] arrivals;
        private int arrived;
        private long generation;
        /** The contributions of the last completed rendezvous, kept until the next one completes. */
        private Contribution[] completed;
        private Failure failure;

        Group(int worldSize, Duration timeout) {
            this.worldSize = worldSize;
            this.timeout = timeout;
            this.timeoutNanos = timeout.toNanos();
            this.arrivals = new Contribution[worldSize];
        }

        void throwIfStopped() {
            lock.lock();
            try {
                if (failure != null) {
                    throw failure.exception();
                }
            } finally {
                lock.unlock();
            }
        }

        void fail(Failure first) {
            lock.lock();
            try {
                if (failure == null) {
                    failure = first;
                    changed.signalAll();
                }
            } finally {
                lock.unlock();
            }
        }

        /**
         * Waits until every rank has arrived and returns all contributions in rank order. The last
         * rank to arrive snapshots them, so that a fast rank's next arrival cannot overwrite what a
         * slow rank is still to read: no later rendezvous can complete before the slow rank arrives.
         */
        Contribution[] rendezvous(int rank, Contribution mine) {
            lock.lock();
            try {
                if (failure != null) {
                    throw failure.exception();
                }
                long myGeneration = generation;
                arrivals[rank] = mine;
                if (++arrived == worldSize) {
                    completed = arrivals.clone();
                    Arrays.fill(arrivals, null);
                    arrived = 0;
                    generation++;
                    changed.signalAll();
                    return completed;
                }
                long left = timeoutNanos;
                while (generation == myGeneration) {
                    if (failure != null) {
                        throw failure.exception();
                    }
                    if (left <= 0) {
                        List<Integer> missing = new ArrayList<>();
                        for (int r = 0; r < worldSize; r++) {
                            if (arrivals[r] == null) {
                                missing.add(r);
                            }
                        }
                        failure = new Failure("rank " + rank + " waited " + timeout + " in " + mine.arguments()
                                + " for ranks " + missing + " that never arrived", rank, missing, null);
                        changed.signalAll();
                        throw failure.exception();
                    }
                    try {
                        left = changed.awaitNanos(left);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        if (failure == null) {
                            failure = new Failure("rank " + rank + " was interrupted in " + mine.arguments(), rank, List.of(), e);
                            changed.signalAll();
                        }
                        throw failure.exception();
                    }
                }
                return completed;
            } finally {
                lock.unlock();
            }
        }
    }
}
