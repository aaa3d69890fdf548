package spin.dist;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.backend.cuda.CudaBackend;
import spin.nativebind.CudaEvent;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import spin.nativebind.NcclAbi;
import spin.nativebind.NcclException;

/**
 * A {@link Communicator} over NCCL, one per CUDA device: the real libnccl on {@code cuda:N}
 * devices, the CUDA emulator's stand-in (native/emu/nccl_emu.cpp) on {@code cuda-emu:N}, both
 * through {@link NcclAbi}. Data never leaves the devices.
 *
 * <h2>Streams</h2>
 * Each collective is queued on the rank's communication stream ({@link CudaBackend#beginCommunication()}
 * makes it wait for the compute work queued so far, by an event), and the compute stream is then
 * made to wait for it ({@link CudaBackend#computeAfter}, at once, or at {@link Pending#await} for
 * {@link #allGatherAsync} and {@link #reduceScatterAsync}, so that a prefetch overlaps compute),
 * so the interface's ordering holds and the host does not wait: on a GPU the call returns once the
 * collective is queued. Only
 * {@link #barrier()} waits for the device.
 *
 * <h2>Sums</h2>
 * On the emulator a sum is in rank order from rank 0's value, as the interface says. Real NCCL
 * sums in the order of its ring or tree: the same bits on every rank, and run to run for the same
 * world, topology and NCCL version, but not the rank-order bits.
 *
 * <h2>Errors</h2>
 * Every {@code ncclResult_t} is checked. A rank whose arguments are wrong, or whose NCCL call
 * fails, aborts its communicator ({@code ncclCommAbort}) and throws: {@link IllegalArgumentException}
 * for the arguments, {@link IllegalStateException} with NCCL's error text for the call.
 * {@link #abort} records the failure for the ranks of this process (they throw a
 * {@link CommunicatorException} naming the failed rank, with its error as the cause) and aborts
 * this rank's communicator, which makes the other ranks' NCCL calls fail with
 * {@code ncclRemoteError}: reported as that same exception when the failed rank is in this
 * process, else as one whose {@link CommunicatorException#failedRank()} is -1 (NCCL does not say
 * which). Unlike {@link InProcessCommunicator}: ranks whose calls disagree are not detected by
 * NCCL (it hangs or corrupts memory; the emulator reports ncclInvalidUsage, an
 * {@link IllegalStateException} here), and NCCL has no timeout of its own.
 *
 * <h2>Watchdog</h2>
 * A collective that has not finished {@code timeout} after it was issued (a rank that stopped,
 * hangs, or never reaches it) stops the group: a watchdog thread polls each rank's oldest
 * unfinished collective (its event on the communication stream, or the call itself while NCCL
 * blocks in it) and aborts the rank with a {@link CommunicatorException} naming the collective and
 * the timeout. The abort makes NCCL's kernels give up (here and, through their own failing
 * calls, in the other processes), so the ranks waiting on the device return and throw.
 */
public final class NcclCommunicator implements Communicator {
    private final NcclAbi nccl;
    private final MemorySegment comm;
    private final int rank;
    private final int worldSize;
    private final CudaBackend backend;
    private final LocalRanks local;
    private final CollectiveArguments arguments;
    /** One F32 element that {@link #barrier()} all-reduces. */
    private final Tensor barrierScratch;
    private boolean released;
    private boolean closed;
    private final Duration timeout;
    /** Collectives issued and not yet seen finished, oldest first; guarded by itself. */
    private final ArrayDeque<Outstanding> outstanding = new ArrayDeque<>();
    private final ScheduledFuture<?> watch;

    /** The watchdog's one thread for every communicator of the process. */
    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("spin-nccl-watchdog").factory());

    /** A collective in flight: its event once queued (null while NCCL is still in the call). */
    private static final class Outstanding {
        final String operation;
        final long issuedNanos = System.nanoTime();
        CudaEvent mark;
        boolean done;

        Outstanding(String operation) {
            this.operation = operation;
        }
    }

    private NcclCommunicator(NcclAbi nccl, MemorySegment comm, int rank, int worldSize, CudaBackend backend,
            LocalRanks local, Duration timeout) {
        this.nccl = nccl;
        this.comm = comm;
        this.rank = rank;
        this.worldSize = worldSize;
        this.backend = backend;
        this.local = local;
        this.arguments = new CollectiveArguments(backend, rank, worldSize);
        this.timeout = timeout;
        this.barrierScratch = backend.allocate(DType.F32, 1);
        long period = Math.max(10, Math.min(1000, timeout.toMillis() / 4));
        this.watch = WATCHDOG.scheduleWithFixedDelay(this::watch, period, period, TimeUnit.MILLISECONDS);
    }

    /**
     * The watchdog's look at this rank: forgets the collectives that have finished, and stops the
     * group when the oldest unfinished one is older than the timeout.
     */
    private void watch() {
        String late = null;
        synchronized (outstanding) {
            while (!outstanding.isEmpty()) {
                Outstanding o = outstanding.peekFirst();
                if (o.mark == null || !o.mark.isComplete()) {
                    if (System.nanoTime() - o.issuedNanos > timeout.toNanos()) {
                        late = o.operation;
                    }
                    break;
                }
                o.done = true;
                o.mark.close();
                outstanding.pollFirst();
            }
        }
        if (late != null && local.failure() == null) {
            String limit = timeout.toMillis() % 1000 == 0 ? timeout.toSeconds() + " s" : timeout.toMillis() + " ms";
            local.fail(new CommunicatorException("rank " + rank + "'s " + late + " did not finish within " + limit
                    + ": a rank of the group stopped, hangs or never reached it; every rank stops", -1, List.of(), null));
            release(true);
        }
    }

    /**
     * A fresh {@link NcclAbi#UNIQUE_ID_BYTES}-byte id for a new group ({@code ncclGetUniqueId} of the
     * NCCL that goes with {@code backend}'s devices): made once, by global rank 0's process, and
     * handed to every process of the group before {@link #create}.
     */
    public static byte[] newUniqueId(Backend backend) {
        return nccl(requireCuda(backend, 0)).uniqueId();
    }

    /**
     * The communicators of this process's ranks of a group of {@code worldSize} ranks named by
     * {@code uniqueId}: global rank {@code firstRank + i} on {@code localBackends.get(i)}, each a
     * CUDA backend of one runtime (all real GPUs or all emulated devices). Returns once every rank
     * of the group, in every process, has joined. One thread makes all of this process's
     * communicators (inside ncclGroupStart/End when there are several, as NCCL requires); each is
     * then used by its own rank's thread. A collective unfinished after {@code timeout} stops the
     * group (see the watchdog above).
     *
     * @throws IllegalArgumentException for a bad id, ranks outside the world, or a non-CUDA backend
     * @throws IllegalStateException with NCCL's text when NCCL is unavailable or refuses
     */
    public static List<NcclCommunicator> create(byte[] uniqueId, int worldSize, int firstRank,
            List<? extends Backend> localBackends, Duration timeout) {
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive, not " + timeout);
        }
        if (uniqueId.length != NcclAbi.UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an NCCL unique id has " + NcclAbi.UNIQUE_ID_BYTES + " bytes, not "
                    + uniqueId.length);
        }
        if (localBackends.isEmpty()) {
            throw new IllegalArgumentException("a process needs at least one local rank");
        }
        if (firstRank < 0 || firstRank + localBackends.size() > worldSize) {
            throw new IllegalArgumentException("ranks " + firstRank + " to " + (firstRank + localBackends.size() - 1)
                    + " are not all ranks of a world of " + worldSize);
        }
        List<CudaBackend> cuda = new ArrayList<>();
        for (int i = 0; i < localBackends.size(); i++) {
            cuda.add(requireCuda(localBackends.get(i), firstRank + i));
        }
        NcclAbi nccl = nccl(cuda.getFirst());
        for (CudaBackend b : cuda) {
            if (b.runtime() != cuda.getFirst().runtime()) {
                throw new IllegalArgumentException("the local ranks mix real and emulated CUDA devices: "
                        + cuda.getFirst().name() + " and " + b.name());
            }
        }
        List<MemorySegment> comms = new ArrayList<>();
        boolean grouped = cuda.size() > 1;
        try {
            // Several ranks from one thread: NCCL waits for all ranks in ncclCommInitRank, so the
            // calls must be grouped, or the first would wait for the second forever.
            if (grouped) {
                nccl.groupStart();
            }
            try {
                for (int i = 0; i < cuda.size(); i++) {
                    cuda.get(i).makeCurrent();
                    comms.add(nccl.commInitRank(worldSize, uniqueId, firstRank + i));
                }
            } finally {
                if (grouped) {
                    nccl.groupEnd();
                }
            }
        } catch (NcclException e) {
            for (MemorySegment made : comms) {
                abortQuietly(nccl, made, e);
            }
            throw new IllegalStateException("cannot make the NCCL communicators of ranks " + firstRank + " to "
                    + (firstRank + cuda.size() - 1) + " of " + worldSize + " (" + nccl.library() + "): " + e.getMessage(), e);
        }
        LocalRanks local = new LocalRanks();
        List<NcclCommunicator> made = new ArrayList<>();
        for (int i = 0; i < cuda.size(); i++) {
            made.add(new NcclCommunicator(nccl, comms.get(i), firstRank + i, worldSize, cuda.get(i), local, timeout));
        }
        return List.copyOf(made);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return worldSize;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public void allGather(Tensor out, Tensor in) {
        allGatherAsync(out, in).await();
    }

    /** Queued on the communication stream; the compute stream waits for it only at {@link Pending#await}. */
    @Override
    public Pending allGatherAsync(Tensor out, Tensor in) {
        return collective("allGather", () -> {
            arguments.allGather(out, in);
        }, stream -> nccl.allGather(in.memory(), out.memory(), in.size(), type(in), comm, stream));
    }

    @Override
    public void reduceScatter(Tensor out, Tensor in) {
        reduceScatterAsync(out, in).await();
    }

    /** Queued on the communication stream; the compute stream waits for it only at {@link Pending#await}. */
    @Override
    public Pending reduceScatterAsync(Tensor out, Tensor in) {
        return collective("reduceScatter", () -> {
            arguments.reduceScatter(out, in);
        }, stream -> nccl.reduceScatter(in.memory(), out.memory(), out.size(), NcclAbi.FLOAT32, NcclAbi.SUM, comm, stream));
    }

    @Override
    public void allReduce(Tensor inOut) {
        awaitNow("allReduce", () -> {
            arguments.allReduce(inOut);
        }, stream -> nccl.allReduce(inOut.memory(), inOut.memory(), inOut.size(), type(inOut), NcclAbi.SUM, comm, stream));
    }

    @Override
    public void broadcast(Tensor inOut, int root) {
        awaitNow("broadcast", () -> {
            arguments.broadcast(inOut, root);
        }, stream -> nccl.broadcast(inOut.memory(), inOut.memory(), inOut.size(), type(inOut), root, comm, stream));
    }

    /** An all-reduce of one element, then a wait for this device: every rank has called it on return. */
    @Override
    public void barrier() {
        awaitNow("barrier", () -> {},
                stream -> nccl.allReduce(barrierScratch.memory(), barrierScratch.memory(), 1, NcclAbi.FLOAT32,
                        NcclAbi.SUM, comm, stream));
        try {
            backend.synchronize();
        } catch (RuntimeException e) {
            abort(e);
            throw e;
        }
    }

    /** May be called from any thread, also while this rank's thread waits in a collective. */
    @Override
    public void abort(Throwable cause) {
        local.fail(new CommunicatorException("rank " + rank + " failed: " + cause, rank, List.of(), cause));
        release(true);
    }

    /**
     * Destroys this rank's NCCL communicator after its last collective (ncclCommDestroy; ncclCommAbort
     * once the group has stopped); does nothing after {@link #abort}. The backend stays open.
     */
    @Override
    public void close() {
        // After a failure the peers may never reach their last collective: destroying would wait.
        release(local.failure() != null);
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        watch.cancel(false);
        synchronized (outstanding) {
            for (Outstanding o : outstanding) {
                o.done = true;
                if (o.mark != null) {
                    o.mark.close();
                }
            }
            outstanding.clear();
        }
        barrierScratch.close();
    }

    @Override
    public String toString() {
        return "NCCL rank " + rank + " of " + worldSize + " on " + backend.name();
    }

    private synchronized void release(boolean abort) {
        if (released) {
            return;
        }
        released = true;
        // The backend is not touched here (only NCCL), so that a watchdog thread may abort while
        // the rank's own thread is inside a collective; close() frees the scratch.
        if (abort) {
            abortQuietly(nccl, comm, null);
        } else {
            nccl.commDestroy(comm);
        }
    }

    private static void abortQuietly(NcclAbi nccl, MemorySegment comm, Throwable failure) {
        try {
            nccl.commAbort(comm);
        } catch (NcclException e) {
            if (failure != null) {
                failure.addSuppressed(e);
            }
        }
    }

    private interface LocalChecks {
        void run();
    }

    private interface Call {
        void queue(MemorySegment stream);
    }

    /** {@link #collective}, with later compute ordered after it at once. */
    private void awaitNow(String operation, LocalChecks checks, Call call) {
        collective(operation, checks, call).await();
    }

    /**
     * Checks this rank's arguments, then queues {@code call} on the communication stream after the
     * compute stream's event, under the watchdog's eye; the returned pending makes compute wait for
     * it. Any failure stops the group before it is thrown, so that no rank waits for this one; a
     * peer's failure is rethrown as the group's.
     */
    private Pending collective(String operation, LocalChecks checks, Call call) {
        local.throwIfStopped();
        synchronized (this) {
            if (released) {
                throw new IllegalStateException(this + " is closed");
            }
        }
        try {
            checks.run();
        } catch (RuntimeException e) {
            abort(e);
            throw e;
        }
        Outstanding o = new Outstanding(operation);
        synchronized (outstanding) {
            outstanding.addLast(o);
        }
        try {
            MemorySegment stream = backend.beginCommunication();
            try {
                call.queue(stream);
            } finally {
                CudaEvent mark = backend.endCommunication();
                synchronized (outstanding) {
                    o.mark = mark;
                }
            }
            boolean[] awaited = {false};
            return () -> {
                if (!awaited[0]) {
                    awaited[0] = true;
                    synchronized (outstanding) {
                        // A mark the watchdog saw finished (and closed) needs no wait.
                        if (!o.done) {
                            backend.computeAfter(o.mark);
                        }
                    }
                }
            };
        } catch (NcclException e) {
            CommunicatorException stopped = local.failure();
            if (stopped != null) {
                release(true);
                throw stopped;
            }
            if (e.isRemote()) {
                CommunicatorException remote = new CommunicatorException("rank " + rank + "'s " + operation
                        + " stopped: a rank of another process failed or aborted (" + e.getMessage() + ")", -1, List.of(), e);
                local.fail(remote);
                release(true);
                throw remote;
            }
            IllegalStateException failed = new IllegalStateException("rank " + rank + "'s " + operation + " on "
                    + backend.name() + " failed: " + e.getMessage(), e);
            abort(failed);
            throw failed;
        }
    }

    private static int type(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> NcclAbi.FLOAT32;
            case F64 -> NcclAbi.FLOAT64;
            case BF16 -> NcclAbi.BFLOAT16;
            case I32 -> throw new IllegalArgumentException("no NCCL collective of spin moves I32: " + t);
        };
    }






    private static CudaBackend requireCuda(Backend backend, int rank) {
        if (backend instanceof CudaBackend cuda) {
            return cuda;
        }
        throw new IllegalArgumentException("NCCL needs a CUDA device (cuda:N or cuda-emu:N) for rank " + rank + ", not "
                + backend.name());
    }

    private static NcclAbi nccl(CudaBackend backend) {
        return NcclAbi.forRuntime(backend.runtime());
    }

    /** The first failure among this process's ranks of one group. */
    private static final class LocalRanks {
        private final AtomicReference<CommunicatorException> failure = new AtomicReference<>();

        void fail(CommunicatorException first) {
            failure.compareAndSet(null, first);
        }

        CommunicatorException failure() {
            CommunicatorException first = failure.get();
            // A fresh exception per throw, so each rank's stack trace is its own.
            return first == null ? null
                    : new CommunicatorException(first.getMessage(), first.failedRank(), first.missingRanks(), first.getCause());
        }

        void throwIfStopped() {
            CommunicatorException stopped = failure();
            if (stopped != null) {
                throw stopped;
            }
        }
    }
}
