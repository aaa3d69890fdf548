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
 * <p>One instance per loaded library ({@code libspin_native.so}, or the emulator's
 * {@code libspin_native_emu.so}), owned by its {@link CudaRuntime}; streams and device memory
 * keep the instance that made them, so both libraries can be in use in one process.
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

    private final NativeLibrary.Loaded library;
    private final MethodHandle lastErrorCall;
    private final MethodHandle driverVersionCall;
    private final MethodHandle runtimeVersionCall;
    private final MethodHandle deviceCountCall;
    private final MethodHandle devicePropertiesCall;
    private final MethodHandle streamCreateCall;
    private final MethodHandle streamDestroyCall;
    private final MethodHandle streamSynchronizeCall;
    private final MethodHandle mallocCall;
    private final MethodHandle freeCall;
    private final MethodHandle memcpyCall;
    private final MethodHandle memsetZeroCall;
    private final MethodHandle setDeviceCall;
    private final MethodHandle mallocAsyncCall;
    private final MethodHandle freeAsyncCall;
    private final MethodHandle poolUsageCall;
    private final MethodHandle poolResetPeakCall;
    private final MethodHandle poolTrimCall;
    private final MethodHandle eventCreateCall;
    private final MethodHandle eventDestroyCall;
    private final MethodHandle eventRecordCall;
    private final MethodHandle streamWaitEventCall;
    private final MethodHandle eventQueryCall;
    private final MethodHandle eventSynchronizeCall;
    private final MethodHandle timingEventCreateCall;
    private final MethodHandle eventElapsedCall;
    private final MethodHandle hostAllocCall;
    private final MethodHandle hostFreeCall;

    /** Binds every entry point of {@code library}, which must export them all. */
    SpinAbi(NativeLibrary.Loaded library) {
        this.library = library;
        lastErrorCall = bind("spin_last_error", FunctionDescriptor.of(ADDRESS));
        driverVersionCall = bind("spin_driver_version", status(ADDRESS));
        runtimeVersionCall = bind("spin_runtime_version", status(ADDRESS));
        deviceCountCall = bind("spin_device_count", status(ADDRESS));
        devicePropertiesCall = bind("spin_device_properties", status(JAVA_INT, ADDRESS));
        streamCreateCall = bind("spin_stream_create", status(ADDRESS));
        streamDestroyCall = bind("spin_stream_destroy", status(ADDRESS));
        streamSynchronizeCall = bind("spin_stream_synchronize", status(ADDRESS));
        mallocCall = bind("spin_malloc", status(ADDRESS, JAVA_LONG));
        freeCall = bind("spin_free", status(ADDRESS));
        memcpyCall = bind("spin_memcpy", status(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS));
        memsetZeroCall = bind("spin_memset_zero", status(ADDRESS, JAVA_LONG, ADDRESS));
        setDeviceCall = bind("spin_set_device", status(JAVA_INT));
        mallocAsyncCall = bind("spin_malloc_async", status(ADDRESS, JAVA_LONG, ADDRESS));
        freeAsyncCall = bind("spin_free_async", status(ADDRESS, ADDRESS));
        poolUsageCall = bind("spin_pool_usage", status(ADDRESS, ADDRESS));
        poolResetPeakCall = bind("spin_pool_reset_peak", status());
        poolTrimCall = bind("spin_pool_trim", status(JAVA_LONG));
        eventCreateCall = bind("spin_event_create", status(ADDRESS));
        eventDestroyCall = bind("spin_event_destroy", status(ADDRESS));
        eventRecordCall = bind("spin_event_record", status(ADDRESS, ADDRESS));
        streamWaitEventCall = bind("spin_stream_wait_event", status(ADDRESS, ADDRESS));
        eventQueryCall = bind("spin_event_query", status(ADDRESS, ADDRESS));
        eventSynchronizeCall = bind("spin_event_synchronize", status(ADDRESS));
        timingEventCreateCall = bind("spin_timing_event_create", status(ADDRESS));
        eventElapsedCall = bind("spin_event_elapsed_ms", status(ADDRESS, ADDRESS, ADDRESS));
        hostAllocCall = bind("spin_host_alloc", status(ADDRESS, JAVA_LONG));
        hostFreeCall = bind("spin_host_free", status(ADDRESS));
    }

    int driverVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) driverVersionCall.invokeExact(out)), "spin_driver_version");
            return out.get(JAVA_INT, 0);
        }
    }

    int runtimeVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) runtimeVersionCall.invokeExact(out)), "spin_runtime_version");
            return out.get(JAVA_INT, 0);
        }
    }

    int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) deviceCountCall.invokeExact(out)), "spin_device_count");
            return out.get(JAVA_INT, 0);
        }
    }

    DeviceProperties deviceProperties(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment props = arena.allocate(DEVICE_PROPS);
            check(StatusCall.invoke(() -> (int) devicePropertiesCall.invokeExact(device, props)), "spin_device_properties");
            return new DeviceProperties(device,
                    props.getString(offset("name")),
                    props.get(JAVA_LONG, offset("total_memory_bytes")),
                    props.get(JAVA_LONG, offset("free_memory_bytes")),
                    props.get(JAVA_INT, offset("compute_major")),
                    props.get(JAVA_INT, offset("compute_minor")),
                    props.get(JAVA_INT, offset("multiprocessor_count")));
        }
    }

    MemorySegment streamCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) streamCreateCall.invokeExact(out)), "spin_stream_create");
            return out.get(ADDRESS, 0);
        }
    }

    void streamDestroy(MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) streamDestroyCall.invokeExact(stream)), "spin_stream_destroy");
    }

    void streamSynchronize(MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) streamSynchronizeCall.invokeExact(stream)), "spin_stream_synchronize");
    }

    /** The device pointer as an address-only segment. */
    MemorySegment malloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) mallocCall.invokeExact(out, bytes)), "spin_malloc");
            return out.get(ADDRESS, 0);
        }
    }

    void free(MemorySegment pointer) {
        check(StatusCall.invoke(() -> (int) freeCall.invokeExact(pointer)), "spin_free");
    }

    void memcpy(MemorySegment dst, MemorySegment src, long bytes, int kind, MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) memcpyCall.invokeExact(dst, src, bytes, kind, stream)), "spin_memcpy");
    }

    void memsetZero(MemorySegment dst, long bytes, MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) memsetZeroCall.invokeExact(dst, bytes, stream)), "spin_memset_zero");
    }

    void setDevice(int device) {
        check(StatusCall.invoke(() -> (int) setDeviceCall.invokeExact(device)), "spin_set_device");
    }

    MemorySegment mallocAsync(long bytes, MemorySegment stream) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) mallocAsyncCall.invokeExact(out, bytes, stream)), "spin_malloc_async");
            return out.get(ADDRESS, 0);
        }
    }

    void freeAsync(MemorySegment pointer, MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) freeAsyncCall.invokeExact(pointer, stream)), "spin_free_async");
    }

    /** {current, peak} bytes of the current device's pool. */
    long[] poolUsage() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment current = arena.allocate(JAVA_LONG);
            MemorySegment peak = arena.allocate(JAVA_LONG);
            check(StatusCall.invoke(() -> (int) poolUsageCall.invokeExact(current, peak)), "spin_pool_usage");
            return new long[] {current.get(JAVA_LONG, 0), peak.get(JAVA_LONG, 0)};
        }
    }

    void poolResetPeak() {
        check(StatusCall.invoke(() -> (int) poolResetPeakCall.invokeExact()), "spin_pool_reset_peak");
    }

    void poolTrim(long keepBytes) {
        check(StatusCall.invoke(() -> (int) poolTrimCall.invokeExact(keepBytes)), "spin_pool_trim");
    }

    MemorySegment eventCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) eventCreateCall.invokeExact(out)), "spin_event_create");
            return out.get(ADDRESS, 0);
        }
    }

    void eventDestroy(MemorySegment event) {
        check(StatusCall.invoke(() -> (int) eventDestroyCall.invokeExact(event)), "spin_event_destroy");
    }

    void eventRecord(MemorySegment event, MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) eventRecordCall.invokeExact(event, stream)), "spin_event_record");
    }

    void streamWaitEvent(MemorySegment stream, MemorySegment event) {
        check(StatusCall.invoke(() -> (int) streamWaitEventCall.invokeExact(stream, event)), "spin_stream_wait_event");
    }

    /** Whether the work {@code event} recorded has finished; never waits. */
    boolean eventQuery(MemorySegment event) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment complete = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) eventQueryCall.invokeExact(event, complete)), "spin_event_query");
            return complete.get(JAVA_INT, 0) != 0;
        }
    }

    void eventSynchronize(MemorySegment event) {
        check(StatusCall.invoke(() -> (int) eventSynchronizeCall.invokeExact(event)), "spin_event_synchronize");
    }

    /** An event that records the device's time as well (spin_timing_event_create). */
    MemorySegment timingEventCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) timingEventCreateCall.invokeExact(out)), "spin_timing_event_create");
            return out.get(ADDRESS, 0);
        }
    }

    /** Milliseconds of device time from {@code start} to {@code end}, both recorded timing events. */
    float eventElapsedMillis(MemorySegment start, MemorySegment end) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment millis = arena.allocate(JAVA_FLOAT);
            check(StatusCall.invoke(() -> (int) eventElapsedCall.invokeExact(start, end, millis)), "spin_event_elapsed_ms");
            return millis.get(JAVA_FLOAT, 0);
        }
    }

    /** Page-locked host memory as an address-only segment. */
    MemorySegment hostAlloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) hostAllocCall.invokeExact(out, bytes)), "spin_host_alloc");
            return out.get(ADDRESS, 0);
        }
    }

    void hostFree(MemorySegment pointer) {
        check(StatusCall.invoke(() -> (int) hostFreeCall.invokeExact(pointer)), "spin_host_free");
    }

    // ------------------------------------------------------------------------------------------

    void check(int status, String call) {
        if (status != SUCCESS) {
            throw new CudaException(CudaException.Reason.of(status), call, lastError());
        }
    }

    private String lastError() {
        try {
            MemorySegment text = (MemorySegment) lastErrorCall.invokeExact();
            return text.reinterpret(LAST_ERROR_BYTES).getString(0);
        } catch (Throwable t) {
            throw new IllegalStateException("spin_last_error failed", t);
        }
    }

    private static long offset(String field) {
        return DEVICE_PROPS.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }

    static FunctionDescriptor status(MemoryLayout... arguments) {
        return FunctionDescriptor.of(JAVA_INT, arguments);
    }

    MethodHandle bind(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = library.symbols().find(name).orElseThrow(
                () -> new IllegalStateException(name + " is missing from " + library.path()));
        return LINKER.downcallHandle(symbol, descriptor);
    }
}
