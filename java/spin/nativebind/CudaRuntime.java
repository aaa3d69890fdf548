package spin.nativebind;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Entry to CUDA through libspin_native: versions, devices, and the factories for streams and
 * device memory. Obtaining one proves the native library is loaded; having a GPU is a separate
 * question that {@link #deviceCount()} answers.
 *
 * <p>Two runtimes exist: {@link #load()} (libspin_native.so, real GPUs) and {@link #loadEmulated()}
 * (libspin_native_emu.so, the CUDA emulator, whose devices run the same kernels on the host
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
     * The CUDA emulator's runtime (its 8 devices are the host CPU running the kernels as fibers), or an
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

    /** Makes GPU {@code device} current for this thread's later streams, allocations and launches. */
    public void setDevice(int device) {
        abi.setDevice(device);
    }

    public CudaStream createStream() {
        return new CudaStream(abi, abi.streamCreate());
    }

    /**
     * {@code bytes} of uninitialised memory from the current device's stream-ordered pool, usable by
     * work queued on {@code stream} from now on: an address-only segment, freed with
     * {@link #freeOnStream}. Sizes a step allocates and frees repeatedly are served from the pool's
     * cache without reaching the driver.
     */
    public MemorySegment allocateOnStream(long bytes, CudaStream stream) {
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation size " + bytes);
        }
        return abi.mallocAsync(bytes, stream.handle()).reinterpret(bytes);
    }

    /** Returns {@code memory} to the pool once the work queued on {@code stream} so far is done. */
    public void freeOnStream(MemorySegment memory, CudaStream stream) {
        abi.freeAsync(memory, stream.handle());
    }

    /** Bytes the current device's pool has allocated now and at most since {@link #resetPoolPeak}. */
    public PoolUsage poolUsage() {
        long[] usage = abi.poolUsage();
        return new PoolUsage(usage[0], usage[1]);
    }

    /** Current and peak bytes of the stream-ordered pool. */
    public record PoolUsage(long currentBytes, long peakBytes) {}

    public void resetPoolPeak() {
        abi.poolResetPeak();
    }

    /** Gives the pool's cached, unused memory back to the driver (before retrying a failed allocation). */
    public void trimPool() {
        abi.poolTrim(0);
    }

    public CudaEvent createEvent() {
        return new CudaEvent(abi, abi.eventCreate());
    }

    /** An event that also records the device's time, for {@link CudaEvent#millisSince} (benchmarks). */
    public CudaEvent createTimingEvent() {
        return new CudaEvent(abi, abi.timingEventCreate());
    }

    /**
     * Binds the entry point {@code name} of this runtime's library, which returns a spin status and
     * takes {@code arguments}; the op families of {@code spin.backend.cuda} bind their kernels so,
     * one handle per library, and pass each status to {@link #check}.
     */
    public MethodHandle bindStatusCall(String name, MemoryLayout... arguments) {
        return abi.bind(name, SpinAbi.status(arguments));
    }

    /** A {@link CudaException} with spin_last_error()'s text when {@code status} is not SPIN_OK. */
    public void check(int status, String call) {
        abi.check(status, call);
    }

    /**
     * {@code bytes} of uninitialised page-locked host memory, which copies to the device read
     * asynchronously. Allocating it may wait for the device: allocate once, up front.
     */
    public PinnedMemory allocatePinned(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation size " + bytes);
        }
        return new PinnedMemory(abi, abi.hostAlloc(bytes).reinterpret(bytes));
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
