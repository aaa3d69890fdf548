package spin.nativebind;

import java.lang.foreign.MemorySegment;

/**
 * A CUDA event: {@link #record} marks the point reached on a stream;
 * {@link CudaStream#waitFor} makes another stream wait for it on the device, {@link #isComplete}
 * asks the host whether it has passed, and {@link #synchronize} makes the host wait for it.
 * Events of {@link CudaRuntime#createEvent} only order work; those of
 * {@link CudaRuntime#createTimingEvent} also time it ({@link #millisSince}).
 */
public final class CudaEvent implements AutoCloseable {
    private final SpinAbi abi;
    private MemorySegment handle;

    CudaEvent(SpinAbi abi, MemorySegment handle) {
        this.abi = abi;
        this.handle = handle;
    }

    /** Marks the work queued on {@code stream} so far. */
    public void record(CudaStream stream) {
        abi.eventRecord(handle(), stream.handle());
    }

    /** Whether the work recorded last has finished (true for an event never recorded); never waits. */
    public boolean isComplete() {
        return abi.eventQuery(handle());
    }

    /** Waits on the host until the work recorded last has finished. */
    public void synchronize() {
        abi.eventSynchronize(handle());
    }

    /**
     * Device milliseconds from {@code start}'s last record to this event's, both timing events and
     * both complete (synchronize this one first). The emulator reports host wall time.
     */
    public float millisSince(CudaEvent start) {
        return abi.eventElapsedMillis(start.handle(), handle());
    }

    MemorySegment handle() {
        if (handle == null) {
            throw new IllegalStateException("CUDA event was closed");
        }
        return handle;
    }

    @Override
    public void close() {
        if (handle != null) {
            MemorySegment closing = handle;
            handle = null;
            abi.eventDestroy(closing);
        }
    }
}
