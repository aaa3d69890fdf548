package spin.nativebind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
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
        CudaException e = assertThrows(CudaException.class, () -> CudaKernels.rmsnormBackwardScratchBytes(cuda, -3, 8));
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
        assertInvalid("spin_rmsnorm_forward: need N >= 0 and C > 0, got N=2 C=0",
                () -> abi.rmsnormForward(none, none, none, none, none, 2, 0, 1e-5f));
        assertInvalid("spin_rmsnorm_forward: NULL tensor pointer",
                () -> abi.rmsnormForward(none, none, none, none, none, 2, 3, 1e-5f));
        assertInvalid("spin_rmsnorm_backward: need N >= 0 and C > 0, got N=-1 C=3",
                () -> abi.rmsnormBackward(none, none, none, none, none, none, none, none, -1, 3));
        assertInvalid("spin_cast_f32_to_bf16: NULL tensor pointer", () -> abi.castF32ToBf16(none, none, none, 5));
        assertInvalid("spin_cast_bf16_to_f32: NULL tensor pointer", () -> abi.castBf16ToF32(none, none, none, 5));
    }

    @Test
    void deviceEntryPointsSucceedOrAnswerNoDevice() {
        answersOrHasNoDevice(() -> abi.streamDestroy(abi.streamCreate()));
        answersOrHasNoDevice(() -> abi.free(abi.malloc(256)));
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
        assertEquals(2L * 4096 * Float.BYTES, CudaKernels.rmsnormBackwardScratchBytes(cuda, 9, 4096));
        assertEquals(0L, CudaKernels.rmsnormBackwardScratchBytes(cuda, 0, 4096));
    }
}
