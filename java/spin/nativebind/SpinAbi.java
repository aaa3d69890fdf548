package spin.nativebind;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;

/**
 * native/include/spin_native.h bound in Java: one method per C entry point, same name in camel
 * case, each turning a non-zero status into a {@link CudaException} with spin_last_error()'s text.
 * Pointers travel as {@link MemorySegment}s; out-parameters live in confined arenas.
 *
 * <p>Only reachable through objects that exist once {@link NativeLibrary#status()} is
 * {@link NativeLibrary.Loaded} ({@link CudaRuntime#load()} checks), so class initialisation
 * finds every symbol.
 */
final class SpinAbi {
    static final int SUCCESS = 0;
    static final int MEMCPY_HOST_TO_DEVICE = 1;
    static final int MEMCPY_DEVICE_TO_HOST = 2;
    static final int MEMCPY_DEVICE_TO_DEVICE = 3;
    static final long LAST_ERROR_BYTES = 1024;
    static final int DEVICE_NAME_BYTES = 256;

    /** spin_device_props; native/spin_native.cu asserts the same size and offsets. */
    static final StructLayout DEVICE_PROPS = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(DEVICE_NAME_BYTES, JAVA_BYTE).withName("name"),
            JAVA_LONG.withName("total_memory_bytes"),
            JAVA_LONG.withName("free_memory_bytes"),
            JAVA_INT.withName("compute_major"),
            JAVA_INT.withName("compute_minor"),
            JAVA_INT.withName("multiprocessor_count"),
            MemoryLayout.paddingLayout(4));

    private static final Linker LINKER = Linker.nativeLinker();

    private static final MethodHandle LAST_ERROR = bind("spin_last_error", FunctionDescriptor.of(ADDRESS));
    private static final MethodHandle DRIVER_VERSION = bind("spin_driver_version", status(ADDRESS));
    private static final MethodHandle RUNTIME_VERSION = bind("spin_runtime_version", status(ADDRESS));
    private static final MethodHandle DEVICE_COUNT = bind("spin_device_count", status(ADDRESS));
    private static final MethodHandle DEVICE_PROPERTIES =
            bind("spin_device_properties", status(JAVA_INT, ADDRESS));
    private static final MethodHandle STREAM_CREATE = bind("spin_stream_create", status(ADDRESS));
    private static final MethodHandle STREAM_DESTROY = bind("spin_stream_destroy", status(ADDRESS));
    private static final MethodHandle STREAM_SYNCHRONIZE = bind("spin_stream_synchronize", status(ADDRESS));
    private static final MethodHandle MALLOC = bind("spin_malloc", status(ADDRESS, JAVA_LONG));
    private static final MethodHandle FREE = bind("spin_free", status(ADDRESS));
    private static final MethodHandle MEMCPY =
            bind("spin_memcpy", status(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS));
    private static final MethodHandle MEMSET_ZERO = bind("spin_memset_zero", status(ADDRESS, JAVA_LONG, ADDRESS));
    private static final MethodHandle RMSNORM_FORWARD = bind("spin_rmsnorm_forward",
            status(ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_FLOAT));
    private static final MethodHandle RMSNORM_BACKWARD_SCRATCH_BYTES = bind("spin_rmsnorm_backward_scratch_bytes",
            status(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle RMSNORM_BACKWARD = bind("spin_rmsnorm_backward",
            status(ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle CAST_F32_TO_BF16 = bind("spin_cast_f32_to_bf16",
            status(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));
    private static final MethodHandle CAST_BF16_TO_F32 = bind("spin_cast_bf16_to_f32",
            status(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));

    private SpinAbi() {}

    static int driverVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(invoke(() -> (int) DRIVER_VERSION.invokeExact(out)), "spin_driver_version");
            return out.get(JAVA_INT, 0);
        }
    }

    static int runtimeVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(invoke(() -> (int) RUNTIME_VERSION.invokeExact(out)), "spin_runtime_version");
            return out.get(JAVA_INT, 0);
        }
    }

    static int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(invoke(() -> (int) DEVICE_COUNT.invokeExact(out)), "spin_device_count");
            return out.get(JAVA_INT, 0);
        }
    }

    static DeviceProperties deviceProperties(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment props = arena.allocate(DEVICE_PROPS);
            check(invoke(() -> (int) DEVICE_PROPERTIES.invokeExact(device, props)), "spin_device_properties");
            return new DeviceProperties(device,
                    props.getString(offset("name")),
                    props.get(JAVA_LONG, offset("total_memory_bytes")),
                    props.get(JAVA_LONG, offset("free_memory_bytes")),
                    props.get(JAVA_INT, offset("compute_major")),
                    props.get(JAVA_INT, offset("compute_minor")),
                    props.get(JAVA_INT, offset("multiprocessor_count")));
        }
    }

    static MemorySegment streamCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(invoke(() -> (int) STREAM_CREATE.invokeExact(out)), "spin_stream_create");
            return out.get(ADDRESS, 0);
        }
    }

    static void streamDestroy(MemorySegment stream) {
        check(invoke(() -> (int) STREAM_DESTROY.invokeExact(stream)), "spin_stream_destroy");
    }

    static void streamSynchronize(MemorySegment stream) {
        check(invoke(() -> (int) STREAM_SYNCHRONIZE.invokeExact(stream)), "spin_stream_synchronize");
    }

    /** The device pointer as an address-only segment. */
    static MemorySegment malloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(invoke(() -> (int) MALLOC.invokeExact(out, bytes)), "spin_malloc");
            return out.get(ADDRESS, 0);
        }
    }

    static void free(MemorySegment pointer) {
        check(invoke(() -> (int) FREE.invokeExact(pointer)), "spin_free");
    }

    static void memcpy(MemorySegment dst, MemorySegment src, long bytes, int kind, MemorySegment stream) {
        check(invoke(() -> (int) MEMCPY.invokeExact(dst, src, bytes, kind, stream)), "spin_memcpy");
    }

    static void memsetZero(MemorySegment dst, long bytes, MemorySegment stream) {
        check(invoke(() -> (int) MEMSET_ZERO.invokeExact(dst, bytes, stream)), "spin_memset_zero");
    }

    static void rmsnormForward(MemorySegment stream, MemorySegment out, MemorySegment rstd, MemorySegment in,
            MemorySegment weight, int n, int c, float eps) {
        check(invoke(() -> (int) RMSNORM_FORWARD.invokeExact(stream, out, rstd, in, weight, n, c, eps)),
                "spin_rmsnorm_forward");
    }

    static long rmsnormBackwardScratchBytes(int n, int c) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check(invoke(() -> (int) RMSNORM_BACKWARD_SCRATCH_BYTES.invokeExact(n, c, out)),
                    "spin_rmsnorm_backward_scratch_bytes");
            return out.get(JAVA_LONG, 0);
        }
    }

    static void rmsnormBackward(MemorySegment stream, MemorySegment dIn, MemorySegment dWeight, MemorySegment scratch,
            MemorySegment dOut, MemorySegment in, MemorySegment weight, MemorySegment rstd, int n, int c) {
        check(invoke(() -> (int) RMSNORM_BACKWARD.invokeExact(stream, dIn, dWeight, scratch, dOut, in, weight, rstd,
                n, c)), "spin_rmsnorm_backward");
    }

    static void castF32ToBf16(MemorySegment stream, MemorySegment out, MemorySegment in, long count) {
        check(invoke(() -> (int) CAST_F32_TO_BF16.invokeExact(stream, out, in, count)), "spin_cast_f32_to_bf16");
    }

    static void castBf16ToF32(MemorySegment stream, MemorySegment out, MemorySegment in, long count) {
        check(invoke(() -> (int) CAST_BF16_TO_F32.invokeExact(stream, out, in, count)), "spin_cast_bf16_to_f32");
    }

    // ------------------------------------------------------------------------------------------

    /** A downcall returning a status: MethodHandle.invokeExact declares Throwable. */
    @FunctionalInterface
    private interface StatusCall {
        int call() throws Throwable;
    }

    private static int invoke(StatusCall call) {
        try {
            return call.call();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("downcall threw a checked exception", t);
        }
    }

    private static void check(int status, String call) {
        if (status != SUCCESS) {
            throw new CudaException(CudaException.Reason.of(status), call, lastError());
        }
    }

    private static String lastError() {
        try {
            MemorySegment text = (MemorySegment) LAST_ERROR.invokeExact();
            return text.reinterpret(LAST_ERROR_BYTES).getString(0);
        } catch (Throwable t) {
            throw new IllegalStateException("spin_last_error failed", t);
        }
    }

    private static long offset(String field) {
        return DEVICE_PROPS.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }

    private static FunctionDescriptor status(MemoryLayout... arguments) {
        return FunctionDescriptor.of(JAVA_INT, arguments);
    }

    private static MethodHandle bind(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = NativeLibrary.symbols().find(name).orElseThrow(
                () -> new IllegalStateException(name + " is missing from " + NativeLibrary.FILE_NAME));
        return LINKER.downcallHandle(symbol, descriptor);
    }
}
