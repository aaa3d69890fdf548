package spin.nativebind;

import java.lang.foreign.MemorySegment;

/** A CUDA stream: work queued on it runs in order, asynchronously to the host. */
public final class CudaStream implements AutoCloseable {
    private final SpinAbi abi;
    private MemorySegment handle;

    CudaStream(SpinAbi abi, MemorySegment handle) {
        this.abi = abi;
        this.handle = handle;
    }

    /** The library of the runtime that made this stream; work queued on it goes through the same one. */
    SpinAbi abi() {
        return abi;
    }

    /** Waits until all work queued on this stream has finished. */
    public void synchronize() {
        abi.streamSynchronize(handle());
    }

    /** Waits, on the device, for the work recorded by {@code event} before running later work. */
    public void waitFor(CudaEvent event) {
        abi.streamWaitEvent(handle(), event.handle());
    }

    /** The native stream, for the kernels' launch calls. */
    public MemorySegment handle() {
        if (handle == null) {
            throw new IllegalStateException("CUDA stream was closed");
        }
        return handle;
    }

    /** Destroys the stream; queued work still completes. Closing twice does nothing. */
    @Override
    public void close() {
        if (handle != null) {
            MemorySegment closing = handle;
            handle = null;
            abi.streamDestroy(closing);
        }
    }
}
