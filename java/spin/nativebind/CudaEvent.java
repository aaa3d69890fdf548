package spin.nativebind;

import java.lang.foreign.MemorySegment;

/**
 * A CUDA event that orders work between streams (no timing): {@link #record} marks the point
 * reached on one stream, {@link CudaStream#waitFor} makes another wait for it on the device.
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
