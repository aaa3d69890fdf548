package spin.nativebind;

import java.lang.foreign.MemorySegment;
import java.util.Optional;

/**
 * Entry to CUDA through libspin_native: versions, devices, and the factories for streams and
 * device memory. Obtaining one proves the native library is loaded; having a GPU is a separate
 * question that {@link #deviceCount()} answers.
 */
public final class CudaRuntime {
    private static final CudaRuntime INSTANCE = new CudaRuntime();

    private CudaRuntime() {}

    /** The runtime, or an {@link IllegalStateException} saying why the native library is unavailable. */
    public static CudaRuntime load() {
        if (NativeLibrary.status() instanceof NativeLibrary.Absent absent) {
            throw new IllegalStateException("CUDA backend unavailable: native library " + absent.describe());
        }
        return INSTANCE;
    }

    /** The CUDA runtime libspin_native was linked against, as loaded. */
    public CudaVersion runtimeVersion() {
        return CudaVersion.decode(SpinAbi.runtimeVersion());
    }

    /** The installed driver's CUDA version; empty when no driver is installed. */
    public Optional<CudaVersion> driverVersion() {
        int encoded = SpinAbi.driverVersion();
        return encoded == 0 ? Optional.empty() : Optional.of(CudaVersion.decode(encoded));
    }

    /**
     * The number of usable GPUs, at least 1. Throws a {@link CudaException} with reason
     * {@link CudaException.Reason#NO_DEVICE} and the cause in its text when there is none.
     */
    public int deviceCount() {
        return SpinAbi.deviceCount();
    }

    /** Name, compute capability, SM count and memory of GPU {@code device} (0-based). */
    public DeviceProperties deviceProperties(int device) {
        return SpinAbi.deviceProperties(device);
    }

    public CudaStream createStream() {
        return new CudaStream(SpinAbi.streamCreate());
    }

    /** {@code bytes} of uninitialised device memory on the current device. */
    public DeviceMemory allocate(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation size " + bytes);
        }
        MemorySegment pointer = SpinAbi.malloc(bytes);
        return new DeviceMemory(pointer.reinterpret(bytes));
    }
}
