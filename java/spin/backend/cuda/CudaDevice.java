package spin.backend.cuda;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import spin.backend.DeviceSpec;
import spin.nativebind.CudaEvent;
import spin.nativebind.CudaException;
import spin.nativebind.CudaRuntime;
import spin.nativebind.CudaStream;
import spin.nativebind.DeviceMemory;
import spin.nativebind.DeviceProperties;
import spin.nativebind.StatusCall;

/**
 * The resources of one GPU (or of one of the emulator's devices) that a {@link CudaBackend} owns: the
 * runtime whose library runs the kernels, a compute stream every op is queued on, a communication
 * stream for collectives with an event ordering it after compute, the stream-ordered memory pool
 * tensors come from, and the pinned {@link StagingRing} uploads go through. It counts the times
 * the host waits for the device ({@link #synchronizations}).
 *
 * <p>CUDA keeps a current device per host thread; every call here first makes this device
 * current on the calling thread (a thread-local comparison when it already is), so a backend
 * may be used from any thread, one at a time.
 */
final class CudaDevice implements AutoCloseable {
    private static final ThreadLocal<Object> CURRENT = new ThreadLocal<>();

    private final CudaRuntime runtime;
    private final DeviceSpec spec;
    private final DeviceProperties properties;
    private final Object identity = new Object();
    private final CudaStream compute;
    private final CudaStream communication;
    private final CudaEvent computeReached;
    private final StagingRing staging;
    private long synchronizations;
    private boolean closed;

    CudaDevice(CudaRuntime runtime, DeviceSpec spec) {
        this.runtime = runtime;
        this.spec = spec;
        this.properties = runtime.deviceProperties(spec.index());
        makeCurrent();
        this.compute = runtime.createStream();
        this.communication = runtime.createStream();
        this.computeReached = runtime.createEvent();
        this.staging = new StagingRing(runtime);
    }

    DeviceSpec spec() {
        return spec;
    }

    DeviceProperties properties() {
        return properties;
    }

    CudaRuntime runtime() {
        return runtime;
    }

    /** The stream every op is queued on, in program order. */
    CudaStream compute() {
        makeCurrent();
        return compute;
    }

    /** The stream for collectives, made to wait for the compute work queued so far. */
    CudaStream communicationAfterCompute() {
        makeCurrent();
        computeReached.record(compute);
        communication.waitFor(computeReached);
        return communication;
    }


    /**
     * Marks where the communication stream's work has reached (the collectives queued so far) with
     * a fresh event, for {@link #computeAfter}: the caller closes it once waited for.
     */
    CudaEvent communicationMark() {
        makeCurrent();
        CudaEvent mark = runtime.createEvent();
        mark.record(communication);
        return mark;
    }

    /** Makes the compute stream wait for {@code mark} (of {@link #communicationMark}) before its later work. */
    void computeAfter(CudaEvent mark) {
        makeCurrent();
        compute.waitFor(mark);
    }

    /** Makes this device current on the calling thread (NCCL binds a communicator to the current device). */
    void makeCurrentForCollectives() {
        makeCurrent();
    }

    /**
     * {@code bytes} from the pool, ordered on the compute stream. An out-of-memory failure first
     * gives the pool's cached free memory back to the driver and retries once, since fragmentation
     * of the cache can refuse a block the device could still give.
     */
    MemorySegment allocate(long bytes) {
        makeCurrent();
        try {
            return runtime.allocateOnStream(bytes, compute);
        } catch (CudaException e) {
            if (e.reason() != CudaException.Reason.OUT_OF_MEMORY) {
                throw e;
            }
            compute.synchronize();
            synchronizations++;
            runtime.trimPool();
            try {
                return runtime.allocateOnStream(bytes, compute);
            } catch (CudaException again) {
                if (again.reason() != CudaException.Reason.OUT_OF_MEMORY) {
                    throw again;
                }
                CudaRuntime.PoolUsage usage = runtime.poolUsage();
                throw new IllegalStateException(String.format(
                        "%s is out of memory: %,d bytes asked for with %,d in use (of %,d); use a smaller batch or"
                                + " sequence length, or see spin inspect --memory",
                        spec, bytes, usage.currentBytes(), properties.totalMemoryBytes()), again);
            }
        }
    }

    /**
     * Returns memory to the pool after the compute work queued so far. After {@link #close} a free
     * does nothing: a tensor outliving its backend has nothing left to return its memory to.
     */
    void free(MemorySegment memory) {
        if (closed) {
            return;
        }
        makeCurrent();
        runtime.freeOnStream(memory, compute);
    }

    CudaRuntime.PoolUsage poolUsage() {
        makeCurrent();
        return runtime.poolUsage();
    }

    void resetPoolPeak() {
        makeCurrent();
        runtime.resetPoolPeak();
    }

    /** Waits for the work queued on both streams. */
    void synchronize() {
        makeCurrent();
        compute.synchronize();
        communication.synchronize();
        synchronizations++;
    }

    /**
     * Queues a copy of host memory (a heap or native segment) into device memory on the compute
     * stream, through the staging ring: the host memory is free to reuse on return, and the host
     * waits (counted) only when every slot of the ring holds a piece the device has not copied yet.
     */
    void upload(MemorySegment deviceDst, MemorySegment host) {
        makeCurrent();
        synchronizations += staging.upload(compute, deviceDst, host);
    }

    /** Copies device memory to the host once the compute work queued before is done, and waits. */
    void download(MemorySegment host, MemorySegment deviceSrc) {
        makeCurrent();
        DeviceMemory.download(compute, host, deviceSrc);
        synchronizations++;
    }

    /** A timer of the compute stream's work (see {@link CudaBackend#workTimer}); its two events are its own. */
    spin.backend.Backend.WorkTimer workTimer() {
        makeCurrent();
        CudaEvent start = runtime.createTimingEvent();
        CudaEvent end = runtime.createTimingEvent();
        return new spin.backend.Backend.WorkTimer() {
            @Override
            public double millis(Runnable work) {
                start.record(compute());
                work.run();
                end.record(compute());
                end.synchronize();
                synchronizations++;
                return end.millisSince(start);
            }

            @Override
            public void close() {
                makeCurrent();
                start.close();
                end.close();
            }
        };
    }

    /**
     * Times the host has waited for this device since it opened: each {@link #synchronize} and
     * {@link #download}, each wait of an {@link #upload} for a staging slot, and each allocation
     * that had to wait before retrying.
     */
    long synchronizations() {
        return synchronizations;
    }

    /** Binds a kernel entry point of this device's library (see {@link CudaRuntime#bindStatusCall}). */
    MethodHandle bind(String name, MemoryLayout... arguments) {
        return runtime.bindStatusCall(name, arguments);
    }

    /** Runs {@code call} with this device current, and turns a failing status into a {@link CudaException}. */
    void launch(String name, StatusCall call) {
        makeCurrent();
        runtime.check(StatusCall.invoke(call), name);
    }

    private void makeCurrent() {
        if (CURRENT.get() != identity) {
            runtime.setDevice(spec.index());
            CURRENT.set(identity);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        synchronize();
        staging.close();
        computeReached.close();
        communication.close();
        compute.close();
    }
}
