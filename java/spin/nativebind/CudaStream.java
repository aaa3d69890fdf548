package spin.nativebind;

import java.lang.foreign.MemorySegment;

/** A CUDA stream: work queued on it runs in order, asynchronously to the host. */
public final class CudaStream implements AutoCloseable {
    private MemorySegment handle;

    CudaStream(MemorySegment handle) {
        this.handle = handle;
    }

    /** Waits until all work queued on this stream has finished. */
    public void synchronize() {
        SpinAbi.streamSynchronize(handle());
    }

    MemorySegment handle() {
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
            SpinAbi.streamDestroy(closing);
        }
    }
}
