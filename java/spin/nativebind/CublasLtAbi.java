package spin.nativebind;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The cuBLASLt C entry points that spin calls, bound in Java: one method per function, each turning
 * a status other than {@code CUBLAS_STATUS_SUCCESS} into a {@link CublasException} naming the call
 * and the status. Handles and descriptors travel as address-only {@link MemorySegment}s;
 * out-parameters live in confined arenas.
 *
 * <p>One instance per loaded library ({@link #of}): the real libcublasLt, or the CUDA emulator's
 * stand-in exported by libspin_native_emu.so (native/emu/cublaslt_emu.cpp), so both can be in use
 * in one process. The constants are those of CUDA 13's cublasLt.h, cublas_api.h and
 * library_types.h; the stand-in has them in native/emu/cublaslt_abi.h, and VendorHeadersTest
 * compares both with NVIDIA's headers.
 */
final class CublasLtAbi {
    /** cublasOperation_t */
    static final int OP_N = 0;
    static final int OP_T = 1;
    /** cudaDataType */
    static final int R_32F = 0;
    static final int R_16BF = 14;
    /** cublasComputeType_t */
    static final int COMPUTE_32F = 68;
    /** cublasLtMatmulDescAttributes_t whose values are int32_t cublasOperation_t. */
    static final int MATMUL_DESC_TRANSA = 3;
    static final int MATMUL_DESC_TRANSB = 4;
    /** cublasLtMatmulPreferenceAttributes_t: a uint64_t. */
    static final int PREF_MAX_WORKSPACE_BYTES = 1;
    /** cublasLtMatmulPreferenceAttributes_t: uint32_t byte alignments of A, B, C, D. */
    static final int PREF_MIN_ALIGNMENT_A_BYTES = 5;
    static final int PREF_MIN_ALIGNMENT_B_BYTES = 6;
    static final int PREF_MIN_ALIGNMENT_C_BYTES = 7;
    static final int PREF_MIN_ALIGNMENT_D_BYTES = 8;

    /** cublasLtMatmulAlgo_t: 64 opaque bytes. */
    static final SequenceLayout MATMUL_ALGO = MemoryLayout.sequenceLayout(8, JAVA_LONG);
    /** cublasLtMatmulHeuristicResult_t, field names as in cublasLt.h. */
    static final StructLayout HEURISTIC_RESULT = MemoryLayout.structLayout(
            MATMUL_ALGO.withName("algo"),
            JAVA_LONG.withName("workspaceSize"),
            JAVA_INT.withName("state"),
            JAVA_FLOAT.withName("wavesCount"),
            MemoryLayout.sequenceLayout(4, JAVA_INT).withName("reserved"));

    private static final int SUCCESS = CublasException.Status.SUCCESS.code;
    private static final long STATE_OFFSET =
            HEURISTIC_RESULT.byteOffset(MemoryLayout.PathElement.groupElement("state"));
    private static final Linker LINKER = Linker.nativeLinker();
    private static final Map<SymbolLookup, CublasLtAbi> BOUND = new ConcurrentHashMap<>();

    private final String library;
    private final SymbolLookup symbols;
    private final MethodHandle createCall;
    private final MethodHandle destroyCall;
    private final MethodHandle getVersionCall;
    private final MethodHandle matmulDescCreateCall;
    private final MethodHandle matmulDescDestroyCall;
    private final MethodHandle matmulDescSetAttributeCall;
    private final MethodHandle matrixLayoutCreateCall;
    private final MethodHandle matrixLayoutDestroyCall;
    private final MethodHandle preferenceCreateCall;
    private final MethodHandle preferenceDestroyCall;
    private final MethodHandle preferenceSetAttributeCall;
    private final MethodHandle algoGetHeuristicCall;
    private final MethodHandle matmulCall;

    /**
     * The binding of the library whose symbols are {@code symbols} ({@code library} names it in
     * messages), made on first request; an {@link IllegalStateException} naming the first missing
     * entry point when it lacks one.
     */
    static CublasLtAbi of(String library, SymbolLookup symbols) {
        return BOUND.computeIfAbsent(symbols, lookup -> new CublasLtAbi(library, lookup));
    }

    private CublasLtAbi(String library, SymbolLookup symbols) {
        this.library = library;
        this.symbols = symbols;
        createCall = bind("cublasLtCreate", status(ADDRESS));
        destroyCall = bind("cublasLtDestroy", status(ADDRESS));
        getVersionCall = bind("cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));
        matmulDescCreateCall = bind("cublasLtMatmulDescCreate", status(ADDRESS, JAVA_INT, JAVA_INT));
        matmulDescDestroyCall = bind("cublasLtMatmulDescDestroy", status(ADDRESS));
        matmulDescSetAttributeCall =
                bind("cublasLtMatmulDescSetAttribute", status(ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        matrixLayoutCreateCall =
                bind("cublasLtMatrixLayoutCreate", status(ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        matrixLayoutDestroyCall = bind("cublasLtMatrixLayoutDestroy", status(ADDRESS));
        preferenceCreateCall = bind("cublasLtMatmulPreferenceCreate", status(ADDRESS));
        preferenceDestroyCall = bind("cublasLtMatmulPreferenceDestroy", status(ADDRESS));
        preferenceSetAttributeCall =
                bind("cublasLtMatmulPreferenceSetAttribute", status(ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        algoGetHeuristicCall = bind("cublasLtMatmulAlgoGetHeuristic",
                status(ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        matmulCall = bind("cublasLtMatmul", status(ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
    }

    /** cuBLASLt's version, 10000 * major + 100 * minor + patch. */
    long version() {
        try {
            return (long) getVersionCall.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtGetVersion failed", t);
        }
    }

    MemorySegment create() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) createCall.invokeExact(out)), "cublasLtCreate");
            return out.get(ADDRESS, 0);
        }
    }

    void destroy(MemorySegment handle) {
        check(StatusCall.invoke(() -> (int) destroyCall.invokeExact(handle)), "cublasLtDestroy");
    }

    MemorySegment matmulDescCreate(int computeType, int scaleType) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) matmulDescCreateCall.invokeExact(out, computeType, scaleType)),
                    "cublasLtMatmulDescCreate");
            return out.get(ADDRESS, 0);
        }
    }

    void matmulDescDestroy(MemorySegment desc) {
        check(StatusCall.invoke(() -> (int) matmulDescDestroyCall.invokeExact(desc)), "cublasLtMatmulDescDestroy");
    }

    /** Sets an attribute whose value is an int32_t. */
    void matmulDescSetInt(MemorySegment desc, int attribute, int value) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocateFrom(JAVA_INT, value);
            check(StatusCall.invoke(() -> (int) matmulDescSetAttributeCall.invokeExact(desc, attribute, buffer,
                    buffer.byteSize())), "cublasLtMatmulDescSetAttribute");
        }
    }

    /** A column-major {@code rows x cols} layout of {@code type} elements, columns {@code ld} elements apart. */
    MemorySegment matrixLayoutCreate(int type, long rows, long cols, long ld) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) matrixLayoutCreateCall.invokeExact(out, type, rows, cols, ld)),
                    "cublasLtMatrixLayoutCreate");
            return out.get(ADDRESS, 0);
        }
    }

    void matrixLayoutDestroy(MemorySegment layout) {
        check(StatusCall.invoke(() -> (int) matrixLayoutDestroyCall.invokeExact(layout)), "cublasLtMatrixLayoutDestroy");
    }

    MemorySegment preferenceCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(StatusCall.invoke(() -> (int) preferenceCreateCall.invokeExact(out)), "cublasLtMatmulPreferenceCreate");
            return out.get(ADDRESS, 0);
        }
    }

    void preferenceDestroy(MemorySegment preference) {
        check(StatusCall.invoke(() -> (int) preferenceDestroyCall.invokeExact(preference)), "cublasLtMatmulPreferenceDestroy");
    }

    /** Sets an attribute whose value is a uint32_t. */
    void preferenceSetInt(MemorySegment preference, int attribute, int value) {
        try (Arena arena = Arena.ofConfined()) {
            preferenceSetAttribute(preference, attribute, arena.allocateFrom(JAVA_INT, value));
        }
    }

    /** Sets an attribute whose value is a uint64_t. */
    void preferenceSetLong(MemorySegment preference, int attribute, long value) {
        try (Arena arena = Arena.ofConfined()) {
            preferenceSetAttribute(preference, attribute, arena.allocateFrom(JAVA_LONG, value));
        }
    }

    private void preferenceSetAttribute(MemorySegment preference, int attribute, MemorySegment buffer) {
        check(StatusCall.invoke(() -> (int) preferenceSetAttributeCall.invokeExact(preference, attribute, buffer,
                buffer.byteSize())), "cublasLtMatmulPreferenceSetAttribute");
    }

    /**
     * Writes into {@code algo} ({@link #MATMUL_ALGO} bytes) the algorithm cuBLASLt's heuristic
     * ranks first for this problem; a problem it has none for is a {@link CublasException} with
     * {@code CUBLAS_STATUS_NOT_SUPPORTED}, as cuBLASLt itself reports it.
     */
    void algoGetHeuristic(MemorySegment handle, MemorySegment desc, MemorySegment aLayout, MemorySegment bLayout,
            MemorySegment cLayout, MemorySegment dLayout, MemorySegment preference, MemorySegment algo) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(HEURISTIC_RESULT);
            MemorySegment count = arena.allocate(JAVA_INT);
            String call = "cublasLtMatmulAlgoGetHeuristic";
            check(StatusCall.invoke(() -> (int) algoGetHeuristicCall.invokeExact(handle, desc, aLayout, bLayout, cLayout,
                    dLayout, preference, 1, result, count)), call);
            if (count.get(JAVA_INT, 0) < 1) {
                throw new CublasException(call, CublasException.Status.NOT_SUPPORTED.code);
            }
            check(result.get(JAVA_INT, STATE_OFFSET), call);
            algo.copyFrom(result.asSlice(0, MATMUL_ALGO));
        }
    }

    /** D = alpha * op(A) op(B) + beta * C, queued on {@code stream}; alpha and beta are host fp32. */
    void matmul(MemorySegment handle, MemorySegment desc, MemorySegment alpha, MemorySegment a, MemorySegment aLayout,
            MemorySegment b, MemorySegment bLayout, MemorySegment beta, MemorySegment c, MemorySegment cLayout,
            MemorySegment d, MemorySegment dLayout, MemorySegment algo, MemorySegment workspace, long workspaceBytes,
            MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) matmulCall.invokeExact(handle, desc, alpha, a, aLayout, b, bLayout, beta, c, cLayout,
                d, dLayout, algo, workspace, workspaceBytes, stream)), "cublasLtMatmul");
    }

    // ------------------------------------------------------------------------------------------

    private static void check(int status, String call) {
        if (status != SUCCESS) {
            throw new CublasException(call, status);
        }
    }

    private static FunctionDescriptor status(MemoryLayout... arguments) {
        return FunctionDescriptor.of(JAVA_INT, arguments);
    }

    private MethodHandle bind(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = symbols.find(name)
                .orElseThrow(() -> new IllegalStateException(name + " is missing from " + library));
        return LINKER.downcallHandle(symbol, descriptor);
    }
}
