package spin.nativebind;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * What the native library answers without needing a GPU: versions, "no GPU" reasons, argument
 * errors. {@link EmulatedCudaRuntimeTest} asks the same of the CUDA emulator's library.
 */
class CudaRuntimeTest {
    private CudaRuntime cuda;
    private SpinAbi abi;

    @BeforeEach
    void requireLibrary() {
        cuda = openRuntime();
        abi = cuda.abi();
    }

    /** The runtime under test, or an aborted (skipped) test saying why it is unavailable. */
    CudaRuntime openRuntime() {
        NativeLibrary.Status status = NativeLibrary.status();
        assumeTrue(status instanceof NativeLibrary.Loaded, () -> "libspin_native " + status.describe());
        return CudaRuntime.load();
    }

    @Test
    void runtimeVersionIsTheOneBuiltAgainst() {
        CudaVersion version = cuda.runtimeVersion();
        assertTrue(version.major() >= 12, version.toString());
    }

    @Test
    void deviceCountIsPositiveOrExplainsWhyThereIsNone() {
        try {
            assertTrue(cuda.deviceCount() >= 1);
        } catch (CudaException e) {
            assertEquals(CudaException.Reason.NO_DEVICE, e.reason(), e.getMessage());
            assertTrue(e.nativeMessage().contains("cudaGetDeviceCount"), e.nativeMessage());
            assertTrue(e.getMessage().startsWith("spin_device_count failed (NO_DEVICE): "), e.getMessage());
        }
    }

    @Test
    void nativeArgumentErrorsCarryTheNativeText() {
        CudaException e = assertThrows(CudaException.class, () -> rmsnormScratchBytes(-3, 8));
        assertEquals(CudaException.Reason.INVALID_ARGUMENT, e.reason());
        assertEquals("spin_rmsnorm_backward_scratch_bytes: need N >= 0 and C > 0, got N=-3 C=8", e.nativeMessage());
    }

    /** Also proves each downcall's Java signature matches, which a mismatch would fail before the native call. */
    @Test
    void everyEntryPointRejectsBadArgumentsWithTheNativeText() {
        MemorySegment none = MemorySegment.NULL;
        assertInvalid("spin_stream_destroy: NULL stream", () -> abi.streamDestroy(none));
        assertInvalid("spin_memcpy: unknown kind 99", () -> abi.memcpy(none, none, 4, 99, none));
        assertInvalid("spin_memcpy: NULL dst for 4 bytes",
                () -> abi.memcpy(none, none, 4, SpinAbi.MEMCPY_HOST_TO_DEVICE, none));
        assertInvalid("spin_memset_zero: NULL dst for 4 bytes", () -> abi.memsetZero(none, 4, none));
        assertInvalid("spin_event_destroy: NULL event", () -> abi.eventDestroy(none));
        assertInvalid("spin_event_record: NULL event", () -> abi.eventRecord(none, none));
        assertInvalid("spin_stream_wait_event: NULL event", () -> abi.streamWaitEvent(none, none));
        assertInvalid("spin_event_query: NULL event", () -> abi.eventQuery(none));
        assertInvalid("spin_event_synchronize: NULL event", () -> abi.eventSynchronize(none));
    }

    @Test
    void deviceEntryPointsSucceedOrAnswerNoDevice() {
        answersOrHasNoDevice(() -> abi.streamDestroy(abi.streamCreate()));
        answersOrHasNoDevice(() -> abi.free(abi.malloc(256)));
        answersOrHasNoDevice(() -> abi.freeAsync(abi.mallocAsync(256, MemorySegment.NULL), MemorySegment.NULL));
        answersOrHasNoDevice(() -> abi.eventDestroy(abi.eventCreate()));
        answersOrHasNoDevice(() -> {
            MemorySegment event = abi.eventCreate();
            abi.eventRecord(event, MemorySegment.NULL);
            abi.eventSynchronize(event);
            assertTrue(abi.eventQuery(event));
            abi.eventDestroy(event);
        });
        answersOrHasNoDevice(() -> abi.hostFree(abi.hostAlloc(256)));
        answersOrHasNoDevice(() -> abi.streamSynchronize(MemorySegment.NULL));
        answersOrHasNoDevice(() -> assertTrue(abi.deviceProperties(0).multiprocessorCount() > 0));
    }

    private static void assertInvalid(String nativeMessage, Executable call) {
        CudaException e = assertThrows(CudaException.class, call);
        assertEquals(CudaException.Reason.INVALID_ARGUMENT, e.reason(), e.getMessage());
        assertEquals(nativeMessage, e.nativeMessage());
    }

    private static void answersOrHasNoDevice(Runnable call) {
        try {
            call.run();
        } catch (CudaException e) {
            assertEquals(CudaException.Reason.NO_DEVICE, e.reason(), e.getMessage());
        }
    }

    @Test
    void scratchCoversOnePartialRowPerEightRows() {
        assertEquals(2L * 4096 * Float.BYTES, rmsnormScratchBytes(9, 4096));
        assertEquals(0L, rmsnormScratchBytes(0, 4096));
    }

    /** A kernel entry point bound as the op families of spin.backend.cuda bind theirs. */
    private long rmsnormScratchBytes(int n, int c) {
        MethodHandle call = cuda.bindStatusCall("spin_rmsnorm_backward_scratch_bytes", JAVA_INT, JAVA_INT, ADDRESS);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            int status;
            try {
                status = (int) call.invokeExact(n, c, out);
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
            cuda.check(status, "spin_rmsnorm_backward_scratch_bytes");
            return out.get(JAVA_LONG, 0);
        }
    }
}
