package spin.nativebind;

import java.lang.foreign.MemorySegment;

/**
 * One device allocation, and the copies between device and host memory.
 *
 * <p>Device memory appears as {@link MemorySegment}s that carry a device address and a size; they
 * must never be read or written on the host, only passed to these methods and to
 * the kernels (spin.backend.cuda). Host memory must be native (off-heap) segments.
 */
public final class DeviceMemory implements AutoCloseable {
    private final SpinAbi abi;
    private final MemorySegment segment;
    private boolean freed;

    DeviceMemory(SpinAbi abi, MemorySegment segment) {
        this.abi = abi;
        this.segment = segment;
    }

    /** The whole allocation; slice it for parts. */
    public MemorySegment segment() {
        if (freed) {
            throw new IllegalStateException("device memory was freed");
        }
        return segment;
    }

    public long byteSize() {
        return segment.byteSize();
    }

    /**
     * Frees the allocation. cudaFree first waits for the device to finish queued work, so closing
     * right after queueing a kernel that uses the memory is safe. Closing twice does nothing.
     */
    @Override
    public void close() {
        if (!freed) {
            freed = true;
            abi.free(segment);
        }
    }

    /**
     * Queues a copy of {@code host} into {@code device} (same size). From {@link PinnedMemory} the
     * copy reads the host memory when the stream reaches it, so that memory must stay unchanged
     * until an event recorded after the copy completes; from pageable memory CUDA has staged it on
     * return, which may mean waiting for the stream's earlier work.
     */
    public static void copyFromHost(CudaStream stream, MemorySegment device, MemorySegment host) {
        requireSameSize(device, host);
        stream.abi().memcpy(device, requireNative(host), host.byteSize(), SpinAbi.MEMCPY_HOST_TO_DEVICE,
                stream.handle());
    }

    /** Copies {@code device} into {@code host} (same size) once the stream's earlier work is done, and waits. */
    public static void download(CudaStream stream, MemorySegment host, MemorySegment device) {
        requireSameSize(host, device);
        stream.abi().memcpy(requireNative(host), device, device.byteSize(), SpinAbi.MEMCPY_DEVICE_TO_HOST,
                stream.handle());
        stream.synchronize();
    }

    /** Queues a device-to-device copy of {@code src} into {@code dst} (same size). */
    public static void copy(CudaStream stream, MemorySegment dst, MemorySegment src) {
        requireSameSize(dst, src);
        stream.abi().memcpy(dst, src, src.byteSize(), SpinAbi.MEMCPY_DEVICE_TO_DEVICE, stream.handle());
    }

    /** Queues zeroing every byte of {@code device}. */
    public static void zero(CudaStream stream, MemorySegment device) {
        stream.abi().memsetZero(device, device.byteSize(), stream.handle());
    }

    private static void requireSameSize(MemorySegment dst, MemorySegment src) {
        if (dst.byteSize() != src.byteSize()) {
            throw new IllegalArgumentException(
                    "copy of " + src.byteSize() + " bytes into " + dst.byteSize() + " bytes");
        }
    }

    private static MemorySegment requireNative(MemorySegment host) {
        if (!host.isNative()) {
            throw new IllegalArgumentException("host memory must be off-heap (allocate it from an Arena)");
        }
        return host;
    }
}
