package spin.nativebind;

import java.lang.foreign.MemorySegment;

/**
 * Page-locked (pinned) host memory from {@link CudaRuntime#allocatePinned}: ordinary host memory
 * the JVM may read and write, from which {@link DeviceMemory#copyFromHost} copies without
 * waiting for the device.
 */
public final class PinnedMemory implements AutoCloseable {
    private final SpinAbi abi;
    private final MemorySegment segment;
    private boolean freed;

    PinnedMemory(SpinAbi abi, MemorySegment segment) {
        this.abi = abi;
        this.segment = segment;
    }

    /** The whole allocation, readable and writable on the host; slice it for parts. */
    public MemorySegment segment() {
        if (freed) {
            throw new IllegalStateException("pinned memory was freed");
        }
        return segment;
    }

    /** Frees the memory; copies still reading it must have completed. Closing twice does nothing. */
    @Override
    public void close() {
        if (!freed) {
            freed = true;
            abi.hostFree(segment);
        }
    }
}
