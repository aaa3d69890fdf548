package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The cuBLASLt contract on the CUDA emulator's stand-in (native/emu/cublaslt_emu.cpp in
 * libspin_native_emu.so), so that CI without a GPU runs it; plus the stand-in's own promises,
 * through the binding: what it refuses, and that every refusal is a {@link CublasException}
 * naming the call and the status.
 */
class CublasLtEmulatedTest extends CublasLtContract {
    @Override
    CudaRuntime openRuntime() {
        return Emulator.require();
    }

    @Test
    void theEmulatedRuntimeGetsTheStandInOfItsOwnLibrary() {
        try (CublasLt blas = CublasLt.create(openRuntime())) {
            assertEquals("13.0.0", blas.version());
        }
    }

    @Test
    void anUnsupportedComputeTypeIsNotSupported() {
        int compute16F = 64;
        assertFails("cublasLtMatmulDescCreate failed: CUBLAS_STATUS_NOT_SUPPORTED (15)",
                CublasException.Status.NOT_SUPPORTED, () -> standIn().matmulDescCreate(compute16F, CublasLtAbi.R_32F));
    }

    @Test
    void aDestroyedHandleIsNotInitialized() {
        CublasLtAbi abi = standIn();
        MemorySegment handle = abi.create();
        abi.destroy(handle);
        assertFails("cublasLtDestroy failed: CUBLAS_STATUS_NOT_INITIALIZED (1)",
                CublasException.Status.NOT_INITIALIZED, () -> abi.destroy(handle));
    }

    @Test
    void mismatchedShapesAreInvalidAndADeadStreamFailsTheExecution() {
        CudaRuntime cuda = openRuntime();
        CublasLtAbi abi = standIn();
        MemorySegment handle = abi.create();
        MemorySegment desc = abi.matmulDescCreate(CublasLtAbi.COMPUTE_32F, CublasLtAbi.R_32F);
        MemorySegment oneByOne = abi.matrixLayoutCreate(CublasLtAbi.R_32F, 1, 1, 1);
        MemorySegment twoByOne = abi.matrixLayoutCreate(CublasLtAbi.R_32F, 2, 1, 2);
        MemorySegment preference = abi.preferenceCreate();
        try (Arena arena = Arena.ofConfined(); DeviceMemory matrix = cuda.allocate(256)) {
            MemorySegment algo = arena.allocate(CublasLtAbi.MATMUL_ALGO);
            assertFails("cublasLtMatmulAlgoGetHeuristic failed: CUBLAS_STATUS_INVALID_VALUE (7)",
                    CublasException.Status.INVALID_VALUE,
                    () -> abi.algoGetHeuristic(handle, desc, oneByOne, oneByOne, twoByOne, twoByOne, preference, algo));

            abi.algoGetHeuristic(handle, desc, oneByOne, oneByOne, oneByOne, oneByOne, preference, algo);
            MemorySegment one = arena.allocateFrom(JAVA_FLOAT, 1);
            MemorySegment m = matrix.segment();
            MemorySegment notAStream = MemorySegment.ofAddress(0x10);
            assertFails("cublasLtMatmul failed: CUBLAS_STATUS_EXECUTION_FAILED (13)",
                    CublasException.Status.EXECUTION_FAILED,
                    () -> abi.matmul(handle, desc, one, m, oneByOne, m, oneByOne, one, m, oneByOne, m, oneByOne, algo,
                            MemorySegment.NULL, 0, notAStream));
        } finally {
            abi.preferenceDestroy(preference);
            abi.matrixLayoutDestroy(twoByOne);
            abi.matrixLayoutDestroy(oneByOne);
            abi.matmulDescDestroy(desc);
            abi.destroy(handle);
        }
    }

    /**
     * As cuBLASLt's own heuristic and matmul: fp32 compute takes fp32 x fp32 -> fp32 and bf16 x bf16
     * -> bf16 or fp32, and nothing else: not fp32 x fp32 -> bf16, not A unlike B, not C unlike D.
     */
    @Test
    void typeCombinationsOutsideCuBlasLtsTableAreNotSupported() {
        CublasLtAbi abi = standIn();
        MemorySegment handle = abi.create();
        MemorySegment desc = abi.matmulDescCreate(CublasLtAbi.COMPUTE_32F, CublasLtAbi.R_32F);
        MemorySegment f32 = abi.matrixLayoutCreate(CublasLtAbi.R_32F, 1, 1, 1);
        MemorySegment bf16 = abi.matrixLayoutCreate(CublasLtAbi.R_16BF, 1, 1, 1);
        MemorySegment preference = abi.preferenceCreate();
        try (Arena arena = Arena.ofConfined(); DeviceMemory matrix = openRuntime().allocate(256)) {
            MemorySegment algo = arena.allocate(CublasLtAbi.MATMUL_ALGO);
            MemorySegment[][] unsupported = {
                {f32, f32, bf16, bf16}, {bf16, f32, f32, f32}, {f32, bf16, bf16, bf16}, {bf16, bf16, bf16, f32},
                {bf16, bf16, f32, bf16}
            };
            for (MemorySegment[] l : unsupported) {
                assertFails("cublasLtMatmulAlgoGetHeuristic failed: CUBLAS_STATUS_NOT_SUPPORTED (15)",
                        CublasException.Status.NOT_SUPPORTED,
                        () -> abi.algoGetHeuristic(handle, desc, l[0], l[1], l[2], l[3], preference, algo));
            }
            for (MemorySegment[] l : new MemorySegment[][] {{f32, f32}, {bf16, bf16}, {bf16, f32}}) {
                abi.algoGetHeuristic(handle, desc, l[0], l[0], l[1], l[1], preference, algo);
            }
            MemorySegment one = arena.allocateFrom(JAVA_FLOAT, 1);
            MemorySegment m = matrix.segment();
            assertFails("cublasLtMatmul failed: CUBLAS_STATUS_NOT_SUPPORTED (15)", CublasException.Status.NOT_SUPPORTED,
                    () -> abi.matmul(handle, desc, one, m, f32, m, f32, one, m, bf16, m, bf16, algo, MemorySegment.NULL,
                            0, MemorySegment.NULL));
        } finally {
            abi.preferenceDestroy(preference);
            abi.matrixLayoutDestroy(bf16);
            abi.matrixLayoutDestroy(f32);
            abi.matmulDescDestroy(desc);
            abi.destroy(handle);
        }
    }

    private CublasLtAbi standIn() {
        NativeLibrary.Loaded library = openRuntime().library();
        return CublasLtAbi.of(library.path().toString(), library.symbols());
    }

    private static void assertFails(String message, CublasException.Status status, Executable call) {
        CublasException e = assertThrows(CublasException.class, call);
        assertEquals(message, e.getMessage());
        assertEquals(status.cName(), e.statusName());
    }
}
