package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Matrix products through cuBLASLt, queued on a {@link CudaStream}: one handle, made from a
 * {@link CudaRuntime}, for the products of that runtime's streams.
 *
 * <p>Which cuBLASLt: for {@link CudaRuntime#load()}, libcublasLt (CUDA 13 first, then 12, then
 * unversioned, looked up by name at run time: spin does not link it); for
 * {@link CudaRuntime#loadEmulated()}, the stand-in that libspin_native_emu.so exports under the same
 * C names (native/emu/cublaslt_emu.cpp), so that the same calls run in CI without a GPU.
 *
 * <p>{@link #gemm} is cuBLAS's column-major product; {@link #linearForward},
 * {@link #linearBackwardInput} and {@link #linearBackwardWeight} are the row-major products of a
 * linear layer expressed through it. Matrices are device segments (see {@link DeviceMemory}); every
 * argument is checked here, before anything is queued, and a cuBLASLt failure is a
 * {@link CublasException}.
 *
 * <p>The first product of a shape makes its plan (matmul descriptor, layouts, the algorithm
 * cuBLASLt's heuristic picks); later products of that shape reuse it without any setup call. Plans
 * live until {@link #close()}.
 *
 * <p>Not safe for concurrent use: the plan cache is unsynchronised, and all products of a handle
 * share its one workspace, so they must run in order on the device: queue them on one stream, or
 * order the streams with events. Use one handle per stream that runs products concurrently.
 */
public final class CublasLt implements AutoCloseable {
    static final List<String> NAMES = List.of("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so");
    /** Device scratch each handle owns, offered to every algorithm: the size cuBLAS recommends for Hopper. */
    public static final long WORKSPACE_BYTES = 32L << 20;
    /**
     * The alignment cuBLASLt's heuristic assumes of every matrix unless told less (its
     * CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES default; cudaMalloc's alignment).
     */
    private static final int FULL_ALIGNMENT = 256;
    private static final int[] MIN_ALIGNMENT_ATTRIBUTES = {
        CublasLtAbi.PREF_MIN_ALIGNMENT_A_BYTES, CublasLtAbi.PREF_MIN_ALIGNMENT_B_BYTES,
        CublasLtAbi.PREF_MIN_ALIGNMENT_C_BYTES, CublasLtAbi.PREF_MIN_ALIGNMENT_D_BYTES
    };

    private static final Optional<OptionalLibrary> LIBRARY = OptionalLibrary.open(NAMES);

    /**
     * The element type of a product's inputs (A and B, always alike) or of its output C. Products
     * always accumulate and scale in fp32 (CUBLAS_COMPUTE_32F: no TF32), and take F32 x F32 -> F32,
     * BF16 x BF16 -> BF16 or BF16 x BF16 -> F32: the combinations cuBLASLt has for that compute type.
     */
    public enum ElementType {
        /** fp32. */
        F32(CublasLtAbi.R_32F, Float.BYTES),
        /** bf16 (raw 16-bit patterns); a bf16 output is the fp32 result rounded to nearest even. */
        BF16(CublasLtAbi.R_16BF, Short.BYTES);

        final int cudaDataType;
        final int bytes;

        ElementType(int cudaDataType, int bytes) {
            this.cudaDataType = cudaDataType;
            this.bytes = bytes;
        }
    }

    private final CudaRuntime cuda;
    private final CublasLtAbi abi;
    private final MemorySegment handle;
    /** MAX_WORKSPACE_BYTES fixed; the alignments are set per plan before its heuristic query. */
    private final MemorySegment preference;
    private final DeviceMemory workspace;
    /** Holds each plan's algorithm. */
    private final Arena arena = Arena.ofShared();
    private final Map<PlanKey, Plan> plans = new HashMap<>();
    private int plansMade;
    private boolean closed;

    private CublasLt(CudaRuntime cuda, CublasLtAbi abi, MemorySegment handle, MemorySegment preference,
            DeviceMemory workspace) {
        this.cuda = cuda;
        this.abi = abi;
        this.handle = handle;
        this.preference = preference;
        this.workspace = workspace;
    }

    /**
     * A handle for products on {@code cuda}'s streams, with its {@link #WORKSPACE_BYTES} of device
     * memory. An {@link IllegalStateException} says why when that runtime has no cuBLASLt.
     */
    public static CublasLt create(CudaRuntime cuda) {
        CublasLtAbi abi = abiFor(cuda);
        MemorySegment handle = abi.create();
        MemorySegment preference = null;
        try {
            preference = abi.preferenceCreate();
            abi.preferenceSetLong(preference, CublasLtAbi.PREF_MAX_WORKSPACE_BYTES, WORKSPACE_BYTES);
            return new CublasLt(cuda, abi, handle, preference, cuda.allocate(WORKSPACE_BYTES));
        } catch (RuntimeException e) {
            if (preference != null) {
                abi.preferenceDestroy(preference);
            }
            abi.destroy(handle);
            throw e;
        }
    }

    /** Whether libcublasLt is installed, under which name, and its version. */
    public static VendorLibraryStatus status() {
        if (LIBRARY.isEmpty()) {
            return VendorLibraryStatus.notFound("cuBLASLt", NAMES);
        }
        OptionalLibrary library = LIBRARY.get();
        String version;
        try {
            version = decodeVersion(CublasLtAbi.of(library.loadedName(), library.symbols()).version());
        } catch (IllegalStateException unusable) {
            version = "unknown (" + unusable.getMessage() + ")";
        }
        return VendorLibraryStatus.found("cuBLASLt", library.loadedName(), version);
    }

    /** cuBLAS encodes its version as 10000 * major + 100 * minor + patch. */
    static String decodeVersion(long encoded) {
        return encoded / 10000 + "." + encoded % 10000 / 100 + "." + encoded % 100;
    }

    /** The version of the cuBLASLt this handle calls, e.g. "13.1.1". */
    public String version() {
        return decodeVersion(abi.version());
    }

    /**
     * C[m,n] = alpha * op(A) op(B) + beta * C, queued on {@code stream}, column-major as in cuBLAS:
     * element (i, j) of a matrix X with leading dimension ldx is at index i + j * ldx of its segment.
     * op(A) is A ({@code transA} false, A stored m x k) or A^T (true, A stored k x m); likewise
     * op(B) is k x n from B stored k x n or n x k. A and B hold {@code inputs}, C holds
     * {@code output} ({@link ElementType}: F32 inputs need an F32 output). Accumulation and the
     * scaling are fp32; a BF16 C is read widened and written rounded once.
     *
     * <p>Checked before anything is queued ({@link IllegalArgumentException} saying what is wrong):
     * the types are a combination cuBLASLt takes;
     * {@code stream} belongs to this handle's runtime; m, n, k are not negative; each leading
     * dimension is at least the rows of its matrix as stored; each segment holds
     * the bytes its matrix spans, {@code ((cols - 1) * ld + rows) * type size}; each address is a
     * non-NULL multiple of the element size. A product with m or n zero does nothing; with k zero
     * it does nothing when beta is 1 (an empty sum added to C) and is refused otherwise, as a
     * scaling rather than a product.
     *
     * <p>When beta is 0, C is only written, so its previous contents (NaN included) do not matter.
     */
    public void gemm(CudaStream stream, boolean transA, boolean transB, int m, int n, int k, float alpha,
            MemorySegment a, int lda, MemorySegment b, int ldb, float beta, MemorySegment c, int ldc,
            ElementType inputs, ElementType output) {
        requireOpen();
        requireSupported(inputs, output);
        MemorySegment streamHandle = stream.handle();
        if (stream.abi() != cuda.abi()) {
            throw new IllegalArgumentException("the stream belongs to another CUDA runtime than this handle's ("
                    + cuda.library().describe() + ")");
        }
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("negative dimension: m=" + m + " n=" + n + " k=" + k);
        }
        if (m == 0 || n == 0 || (k == 0 && beta == 1)) {
            return;
        }
        if (k == 0) {
            throw new IllegalArgumentException("k = 0 with beta = " + beta + " scales C, it is no product");
        }
        Operand aStored = Operand.of("a", "lda", "transA", transA, m, k, a, lda, inputs);
        Operand bStored = Operand.of("b", "ldb", "transB", transB, k, n, b, ldb, inputs);
        Operand cStored = Operand.of("c", "ldc", null, false, m, n, c, ldc, output);
        for (Operand operand : List.of(aStored, bStored, cStored)) {
            operand.check();
        }
        // The heuristic must not assume more alignment than the addresses have.
        int alignment = (int) Math.min(FULL_ALIGNMENT, Long.lowestOneBit(a.address() | b.address() | c.address()));
        Plan plan = plans.computeIfAbsent(
                new PlanKey(transA, transB, m, n, k, lda, ldb, ldc, inputs, output, beta == 0, alignment),
                key -> makePlan(key, aStored, bStored, cStored));
        try (Arena scalars = Arena.ofConfined()) {
            abi.matmul(handle, plan.desc, scalars.allocateFrom(JAVA_FLOAT, alpha), a, plan.aLayout, b, plan.bLayout,
                    scalars.allocateFrom(JAVA_FLOAT, beta), c, plan.cLayout, c, plan.cLayout, plan.algo,
                    workspace.segment(), workspace.byteSize(), streamHandle);
        }
    }

    /**
     * out[N,O] = in[N,I] · weight[O,I]^T (overwritten): a linear layer's forward, all row-major and
     * contiguous, N = {@code rows}, I = {@code inFeatures}, O = {@code outFeatures}; in and weight
     * hold {@code inputs}, out holds {@code output} (as {@link #gemm}).
     *
     * <p>A row-major [R,C] matrix is the column-major C x R matrix of its transpose (ld C), so this
     * is the column-major out^T[O,N] = weight · in^T, with weight read as the transpose of the
     * stored weight^T[I,O]: {@code gemm(transA = true, transB = false, m = O, n = N, k = I,
     * a = weight, lda = I, b = in, ldb = I, beta = 0, c = out, ldc = O)}.
     */
    public void linearForward(CudaStream stream, MemorySegment out, MemorySegment in, MemorySegment weight, int rows,
            int inFeatures, int outFeatures, ElementType inputs, ElementType output) {
        requireRowMajor("out", out, rows, outFeatures, output);
        requireRowMajor("in", in, rows, inFeatures, inputs);
        requireRowMajor("weight", weight, outFeatures, inFeatures, inputs);
        gemm(stream, true, false, outFeatures, rows, inFeatures, 1, weight, inFeatures, in, inFeatures, 0, out,
                outFeatures, inputs, output);
    }

    /**
     * dIn[N,I] = dOut[N,O] · weight[O,I] (overwritten), row-major and contiguous: the input
     * gradient of {@link #linearForward}; dOut and weight hold {@code inputs}, dIn holds
     * {@code output}. Column-major this is dIn^T[I,N] = weight^T[I,O] · dOut^T[O,N], both stored
     * as such: {@code gemm(transA = false, transB = false, m = I, n = N, k = O, a = weight,
     * lda = I, b = dOut, ldb = O, beta = 0, c = dIn, ldc = I)}.
     */
    public void linearBackwardInput(CudaStream stream, MemorySegment dIn, MemorySegment dOut, MemorySegment weight,
            int rows, int inFeatures, int outFeatures, ElementType inputs, ElementType output) {
        requireRowMajor("dIn", dIn, rows, inFeatures, output);
        requireRowMajor("dOut", dOut, rows, outFeatures, inputs);
        requireRowMajor("weight", weight, outFeatures, inFeatures, inputs);
        gemm(stream, false, false, inFeatures, rows, outFeatures, 1, weight, inFeatures, dOut, outFeatures, 0, dIn,
                inFeatures, inputs, output);
    }

    /**
     * dWeight[O,I] += dOut[N,O]^T · in[N,I] (accumulated), row-major and contiguous: the weight
     * gradient of {@link #linearForward}; dOut and in hold {@code inputs}, dWeight holds
     * {@code output} (F32 for a model's parameter gradient whatever its compute dtype).
     * Column-major this is dWeight^T[I,O] += in^T[I,N] · dOut[N,O], with dOut read as the
     * transpose of the stored dOut^T[O,N]: {@code gemm(transA = false, transB = true, m = I, n = O,
     * k = N, a = in, lda = I, b = dOut, ldb = O, beta = 1, c = dWeight, ldc = I)}. N = 0 leaves
     * dWeight as it is.
     */
    public void linearBackwardWeight(CudaStream stream, MemorySegment dWeight, MemorySegment dOut, MemorySegment in,
            int rows, int inFeatures, int outFeatures, ElementType inputs, ElementType output) {
        requireRowMajor("dWeight", dWeight, outFeatures, inFeatures, output);
        requireRowMajor("dOut", dOut, rows, outFeatures, inputs);
        requireRowMajor("in", in, rows, inFeatures, inputs);
        gemm(stream, false, true, inFeatures, outFeatures, rows, 1, in, inFeatures, dOut, outFeatures, 1, dWeight,
                inFeatures, inputs, output);
    }

    /** How many plans this handle has made: one per distinct shape (and types, alignment) seen. */
    int plansMade() {
        return plansMade;
    }

    /**
     * Frees the workspace (cudaFree first waits for the device, so queued products finish), then
     * destroys the plans, the preference and the handle. Closing twice does nothing.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        workspace.close();
        plans.values().forEach(Plan::destroy);
        plans.clear();
        abi.preferenceDestroy(preference);
        abi.destroy(handle);
        arena.close();
    }

    // ------------------------------------------------------------------------------------------

    /**
     * The cuBLASLt of {@code cuda}: the stand-in in the runtime's own library where it exports one
     * (the CUDA emulator's), else libcublasLt.
     */
    private static CublasLtAbi abiFor(CudaRuntime cuda) {
        NativeLibrary.Loaded own = cuda.library();
        if (own.symbols().find("cublasLtCreate").isPresent()) {
            return CublasLtAbi.of(own.path().toString(), own.symbols());
        }
        OptionalLibrary library = LIBRARY.orElseThrow(
                () -> new IllegalStateException("cuBLASLt unavailable: " + status().detail()));
        return CublasLtAbi.of(library.loadedName(), library.symbols());
    }

    /**
     * The type combinations cuBLASLt's CUBLAS_COMPUTE_32F products take (its cublasLtMatmul table):
     * any but F32 inputs with a BF16 output, which it would refuse as not supported.
     */
    private static void requireSupported(ElementType inputs, ElementType output) {
        Objects.requireNonNull(inputs, "inputs");
        Objects.requireNonNull(output, "output");
        if (inputs == ElementType.F32 && output == ElementType.BF16) {
            throw new IllegalArgumentException("F32 inputs with a BF16 output is no cuBLASLt fp32-compute product; "
                    + "it takes F32 x F32 -> F32 and BF16 x BF16 -> BF16 or F32");
        }
    }

    /** The linear layer's own names in the messages, rather than gemm's a, b, c. */
    private static void requireRowMajor(String name, MemorySegment tensor, int rows, int columns, ElementType type) {
        Objects.requireNonNull(type, "type");
        if (rows < 0 || columns < 0) {
            throw new IllegalArgumentException(name + " [" + rows + "," + columns + "]: negative dimension");
        }
        long bytes = (long) rows * columns * type.bytes;
        if (tensor.byteSize() < bytes) {
            throw new IllegalArgumentException(name + " [" + rows + "," + columns + "] " + type + " holds "
                    + tensor.byteSize() + " bytes, needs " + bytes);
        }
    }

    private static int operation(boolean transposed) {
        return transposed ? CublasLtAbi.OP_T : CublasLtAbi.OP_N;
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("cuBLASLt handle was closed");
        }
    }

    /**
     * Everything a plan depends on, the element types of A and B ({@code inputs}) and of C
     * ({@code output}) included. beta == 0 lets cuBLASLt pick algorithms that never read C;
     * {@code alignment} is the largest power of two, at most 256, that divides every matrix address.
     */
    private record PlanKey(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb, int ldc,
            ElementType inputs, ElementType output, boolean betaIsZero, int alignment) {}

    /** The cuBLASLt objects of one shape; null fields are not made (yet). */
    private final class Plan {
        MemorySegment desc;
        MemorySegment aLayout;
        MemorySegment bLayout;
        MemorySegment cLayout;
        final MemorySegment algo = arena.allocate(CublasLtAbi.MATMUL_ALGO);

        void destroy() {
            for (MemorySegment layout : new MemorySegment[] {aLayout, bLayout, cLayout}) {
                if (layout != null) {
                    abi.matrixLayoutDestroy(layout);
                }
            }
            if (desc != null) {
                abi.matmulDescDestroy(desc);
            }
        }
    }

    private Plan makePlan(PlanKey key, Operand aStored, Operand bStored, Operand cStored) {
        Plan plan = new Plan();
        try {
            plan.desc = abi.matmulDescCreate(CublasLtAbi.COMPUTE_32F, CublasLtAbi.R_32F);
            abi.matmulDescSetInt(plan.desc, CublasLtAbi.MATMUL_DESC_TRANSA, operation(key.transA));
            abi.matmulDescSetInt(plan.desc, CublasLtAbi.MATMUL_DESC_TRANSB, operation(key.transB));
            plan.aLayout = aStored.layout(abi);
            plan.bLayout = bStored.layout(abi);
            plan.cLayout = cStored.layout(abi);
            for (int attribute : MIN_ALIGNMENT_ATTRIBUTES) {
                abi.preferenceSetInt(preference, attribute, key.alignment);
            }
            abi.algoGetHeuristic(handle, plan.desc, plan.aLayout, plan.bLayout, plan.cLayout, plan.cLayout, preference,
                    plan.algo);
        } catch (RuntimeException e) {
            plan.destroy();
            throw e;
        }
        plansMade++;
        return plan;
    }

    /**
     * One matrix argument as stored: column-major {@code rows x cols} of {@code type} with leading
     * dimension {@code ld}; {@code transposition} names the flag that made it op(X)'s transpose, if any.
     */
    private record Operand(String name, String ldName, String transposition, boolean transposed, int rows, int cols,
            MemorySegment data, int ld, ElementType type) {
        /** The operand whose op(X) is {@code opRows x opCols}. */
        static Operand of(String name, String ldName, String transposition, boolean transposed, int opRows,
                int opCols, MemorySegment data, int ld, ElementType type) {
            return new Operand(name, ldName, transposition, transposed, transposed ? opCols : opRows,
                    transposed ? opRows : opCols, data, ld, type);
        }

        MemorySegment layout(CublasLtAbi abi) {
            return abi.matrixLayoutCreate(type.cudaDataType, rows, cols, ld);
        }

        void check() {
            if (data.address() == 0 || data.address() % type.bytes != 0) {
                throw new IllegalArgumentException(name + " at address 0x" + Long.toHexString(data.address())
                        + " is not a non-NULL multiple of the " + type.bytes + "-byte " + type + " element");
            }
            String stored = name + " is " + rows + " x " + cols
                    + (transposition == null ? "" : " with " + transposition + " = " + transposed);
            if (ld < rows) {
                throw new IllegalArgumentException(
                        ldName + " = " + ld + " is less than the rows of " + name + " as stored (" + stored + ")");
            }
            long bytes = ((long) (cols - 1) * ld + rows) * type.bytes;
            if (data.byteSize() < bytes) {
                throw new IllegalArgumentException(name + " holds " + data.byteSize() + " bytes, needs " + bytes
                        + " (" + stored + ", " + ldName + " = " + ld + ", " + type + ")");
            }
        }
    }
}
