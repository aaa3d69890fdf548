package spin.backend.cuda;

import java.lang.foreign.MemorySegment;

/**
 * Device scratch for one op, from the stream-ordered pool: freed on the compute stream after the
 * op's kernels, so the next op may reuse the same bytes without waiting for the host.
 */
final class Scratch implements AutoCloseable {
    private final CudaDevice device;
    private final MemorySegment memory;

    Scratch(CudaDevice device, long bytes) {
        this.device = device;
        this.memory = bytes == 0 ? MemorySegment.NULL : device.allocate(bytes);
    }

    MemorySegment memory() {
        return memory;
    }

    @Override
    public void close() {
        if (memory.address() != 0) {
            device.free(memory);
        }
    }
}
