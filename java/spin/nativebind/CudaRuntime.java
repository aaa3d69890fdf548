package spin.nativebind;

import java.lang.foreign.MemorySegment;
import java.util.Optional;

/**
 * Entry to CUDA through libspin_native: versions, devices, and the factories for streams and
 * device memory. Obtaining one proves the native library is loaded; having a GPU is a separate
 * question that {@link #deviceCount()} answers.
 *
 * <p>Two runtimes exist: {@link #load()} (libspin_native.so, real GPUs) and {@link #loadEmulated()}
 * (libspin_native_emu.so, the CUDA emulator, whose one device runs the same kernels on the host
 * CPU). Streams and memory belong to the runtime that made them and must not be mixed.
 */
public final class CudaRuntime {
    private final SpinAbi abi;
    private final NativeLibrary.Loaded library;

    /** Made on first use, after {@link NativeLibrary#status()} says the library is loaded. */
    private static final class Real {
        static final CudaRuntime INSTANCE = new CudaRuntime((NativeLibrary.Loaded) NativeLibrary.status());
    }

    private static final class Emulated {
        static final CudaRuntime INSTANCE = new CudaRuntime((NativeLibrary.Loaded) NativeLibrary.emulatedStatus());
    }

    private CudaRuntime(NativeLibrary.Loaded library) {
        this.library = library;
        this.abi = new SpinAbi(library);
    }

    /** The runtime, or an {@link IllegalStateException} saying why the native library is unavailable. */
    public static CudaRuntime load() {
        if (NativeLibrary.status() instanceof NativeLibrary.Absent absent) {
            throw new IllegalStateException("CUDA backend unavailable: native library " + absent.describe());
        }
        return Real.INSTANCE;
    }

    /**
     * The CUDA emulator's runtime (device 0 is the host CPU running the kernels as fibers), or an
     * {@link IllegalStateException} saying why libspin_native_emu.so is unavailable.
     */
    public static CudaRuntime loadEmulated() {
        if (NativeLibrary.emulatedStatus() instanceof NativeLibrary.Absent absent) {
            throw new IllegalStateException("CUDA emulator unavailable: " + NativeLibrary.EMULATED_FILE_NAME + " "
                    + absent.describe());
        }
        return Emulated.INSTANCE;
    }

    /** The library this runtime calls. */
    public NativeLibrary.Loaded library() {
        return library;
    }

    SpinAbi abi() {
        return abi;
    }

    /** The CUDA runtime libspin_native was linked against, as loaded. */
    public CudaVersion runtimeVersion() {
        return CudaVersion.decode(abi.runtimeVersion());
    }

    /** The installed driver's CUDA version; empty when no driver is installed. */
    public Optional<CudaVersion> driverVersion() {
        int encoded = abi.driverVersion();
        return encoded == 0 ? Optional.empty() : Optional.of(CudaVersion.decode(encoded));
    }

    /**
     * The number of usable GPUs, at least 1. Throws a {@link CudaException} with reason
     * {@link CudaException.Reason#NO_DEVICE} and the cause in its text when there is none.
     */
    public int deviceCount() {
        return abi.deviceCount();
    }

    /** Name, compute capability, SM count and memory of GPU {@code device} (0-based). */
    public DeviceProperties deviceProperties(int device) {
        return abi.deviceProperties(device);
    }

    public CudaStream createStream() {
        return new CudaStream(abi, abi.streamCreate());
    }

    /** {@code bytes} of uninitialised device memory on the current device. */
    public DeviceMemory allocate(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation size " + bytes);
        }
        MemorySegment pointer = abi.malloc(bytes);
        return new DeviceMemory(abi, pointer.reinterpret(bytes));
    }
}
