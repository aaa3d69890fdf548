package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import spin.nativebind.CublasLt.ElementType;

/**
 * {@link CublasLt} against a double-precision product computed here from the same (for bf16: the
 * same bf16-rounded) random inputs, element by element. Written once and run against each
 * cuBLASLt: {@link CublasLtGpuTest} (libcublasLt on a GPU), {@link CublasLtEmulatedTest} (the
 * CUDA emulator's stand-in).
 *
 * <p>Every type combination a product takes ({@link #TYPES}: F32 x F32 -> F32, BF16 x BF16 -> BF16,
 * BF16 x BF16 -> F32) runs each case. Tolerance per element: fp32 accumulation may be off by
 * (k + 2) fp32 ulps of the sum of the magnitudes of its terms, in any order of summation; a bf16
 * result additionally by 2 bf16 ulps of the exact value (its rounding).
 */
abstract class CublasLtContract {
    /** Fills what a product must neither read (padding of A and B) nor write (padding of C). */
    private static final float POISON = Float.NaN;

    /** The input and output types of a product: A and B hold {@code inputs}, C holds {@code output}. */
    record Types(ElementType inputs, ElementType output) {
        @Override
        public String toString() {
            return inputs + " x " + inputs + " -> " + output;
        }
    }

    /** The combinations {@link CublasLt#gemm} takes. */
    static final List<Types> TYPES = List.of(new Types(ElementType.F32, ElementType.F32),
            new Types(ElementType.BF16, ElementType.BF16), new Types(ElementType.BF16, ElementType.F32));

    private CudaRuntime cuda;
    private CudaStream stream;
    private CublasLt blas;
    private final List<DeviceMemory> allocations = new ArrayList<>();
    private final long seed = new SplittableRandom().nextLong();
    private final Random random = new Random(seed);

    /** The runtime whose cuBLASLt is under test, or an aborted (skipped) test saying why there is none. */
    abstract CudaRuntime openRuntime();

    @BeforeEach
    void open() {
        cuda = openRuntime();
        stream = cuda.createStream();
        blas = CublasLt.create(cuda);
    }

    @AfterEach
    void release() {
        if (blas != null) {
            blas.close();
        }
        allocations.forEach(DeviceMemory::close);
        if (stream != null) {
            stream.close();
        }
    }

    // ------------------------------------------------------------------------------- gemm

    static Stream<Arguments> products() {
        List<Arguments> cases = new ArrayList<>();
        int[][] shapes = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}};
        for (Types types : TYPES) {
            for (boolean transA : new boolean[] {false, true}) {
                for (boolean transB : new boolean[] {false, true}) {
                    for (int[] shape : shapes) {
                        for (int padding : new int[] {0, 3}) {
                            for (float beta : new float[] {0, 1}) {
                                cases.add(Arguments.of(types, transA, transB, shape[0], shape[1], shape[2], padding,
                                        beta));
                            }
                        }
                    }
                }
            }
        }
        return cases.stream();
    }

    /** Padding makes every leading dimension exceed its rows; the padding is poisoned, so reading it shows. */
    @ParameterizedTest(name = "{0} transA={1} transB={2} m={3} n={4} k={5} ld padding={6} beta={7}")
    @MethodSource("products")
    void gemmMatchesFp64Reference(Types types, boolean transA, boolean transB, int m, int n, int k, int padding,
            float beta) {
        float alpha = -1.25f;
        Matrix a = random(types.inputs, transA ? k : m, transA ? m : k, padding);
        Matrix b = random(types.inputs, transB ? n : k, transB ? k : n, padding);
        // beta == 0: C's old values must not be read, so they are all NaN.
        Matrix c = beta == 0 ? Matrix.filled(types.output, m, n, m + padding, POISON) : random(types.output, m, n, padding);
        MemorySegment cDevice = upload(c);

        blas.gemm(stream, transA, transB, m, n, k, alpha, upload(a), a.ld, upload(b), b.ld, beta, cDevice, c.ld,
                types.inputs, types.output);

        Matrix result = download(cDevice, c);
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double exact = 0;
                double magnitude = 0;
                for (int p = 0; p < k; p++) {
                    double term = (transA ? a.get(p, i) : a.get(i, p)) * (transB ? b.get(j, p) : b.get(p, j));
                    exact += term;
                    magnitude += Math.abs(term);
                }
                exact *= alpha;
                magnitude *= Math.abs(alpha);
                if (beta != 0) {
                    exact += beta * c.get(i, j);
                    magnitude += Math.abs(beta * c.get(i, j));
                }
                assertNear(exact, magnitude, k, result.get(i, j), types.output, "C(" + i + "," + j + ")");
            }
        }
        assertPaddingUntouched(result, c);
    }

    @ParameterizedTest
    @MethodSource("typeCombinations")
    void linearForwardIsInTimesWeightTransposed(Types types) {
        int rows = 7;
        int inFeatures = 5;
        int outFeatures = 3;
        Matrix in = randomRowMajor(types.inputs, rows, inFeatures);
        Matrix weight = randomRowMajor(types.inputs, outFeatures, inFeatures);
        Matrix out = Matrix.filled(types.output, outFeatures, rows, outFeatures, POISON);
        MemorySegment outDevice = upload(out);

        blas.linearForward(stream, outDevice, upload(in), upload(weight), rows, inFeatures, outFeatures, types.inputs,
                types.output);

        assertRowMajorProduct(download(outDevice, out), rows, outFeatures, inFeatures,
                (r, o, p) -> in.getRowMajor(r, p) * weight.getRowMajor(o, p), null, types.output);
    }

    @ParameterizedTest
    @MethodSource("typeCombinations")
    void linearBackwardInputIsDOutTimesWeight(Types types) {
        int rows = 7;
        int inFeatures = 5;
        int outFeatures = 3;
        Matrix dOut = randomRowMajor(types.inputs, rows, outFeatures);
        Matrix weight = randomRowMajor(types.inputs, outFeatures, inFeatures);
        Matrix dIn = Matrix.filled(types.output, inFeatures, rows, inFeatures, POISON);
        MemorySegment dInDevice = upload(dIn);

        blas.linearBackwardInput(stream, dInDevice, upload(dOut), upload(weight), rows, inFeatures, outFeatures,
                types.inputs, types.output);

        assertRowMajorProduct(download(dInDevice, dIn), rows, inFeatures, outFeatures,
                (r, i, o) -> dOut.getRowMajor(r, o) * weight.getRowMajor(o, i), null, types.output);
    }

    /** BF16 x BF16 -> F32 is a bf16 model's parameter gradient: bf16 activations, an fp32 dWeight. */
    @ParameterizedTest
    @MethodSource("typeCombinations")
    void linearBackwardWeightAccumulatesDOutTransposedTimesIn(Types types) {
        int rows = 7;
        int inFeatures = 5;
        int outFeatures = 3;
        Matrix dOut = randomRowMajor(types.inputs, rows, outFeatures);
        Matrix in = randomRowMajor(types.inputs, rows, inFeatures);
        Matrix dWeight = randomRowMajor(types.output, outFeatures, inFeatures);
        MemorySegment dWeightDevice = upload(dWeight);

        blas.linearBackwardWeight(stream, dWeightDevice, upload(dOut), upload(in), rows, inFeatures, outFeatures,
                types.inputs, types.output);

        assertRowMajorProduct(download(dWeightDevice, dWeight), outFeatures, inFeatures, rows,
                (o, i, r) -> dOut.getRowMajor(r, o) * in.getRowMajor(r, i), dWeight, types.output);
    }

    static Stream<Types> typeCombinations() {
        return TYPES.stream();
    }

    /** The one combination of fp32 and bf16 cuBLASLt's fp32-compute products lack is refused before anything is queued. */
    @Test
    void f32InputsWithABf16OutputAreRefused() {
        MemorySegment big = allocate(64 * Float.BYTES);
        assertRefused("F32 inputs with a BF16 output is no cuBLASLt fp32-compute product; it takes F32 x F32 -> F32 "
                        + "and BF16 x BF16 -> BF16 or F32",
                () -> blas.gemm(stream, false, false, 2, 2, 2, 1, big, 2, big, 2, 0, big, 2, ElementType.F32,
                        ElementType.BF16));
        assertEquals(0, blas.plansMade());
    }

    @Test
    void linearBackwardWeightOfNoRowsLeavesDWeightAlone() {
        Matrix dWeight = randomRowMajor(ElementType.F32, 3, 5);
        MemorySegment dWeightDevice = upload(dWeight);

        blas.linearBackwardWeight(stream, dWeightDevice, allocate(0), allocate(0), 0, 5, 3, ElementType.BF16,
                ElementType.F32);

        assertArrayEquals(dWeight.values(), download(dWeightDevice, dWeight).values());
        assertEquals(0, blas.plansMade());
    }

    /** Addresses that are only 4-byte aligned: the heuristic must be told, as cuBLASLt assumes 256 by default. */
    @Test
    void gemmOnSlicesAlignedOnlyToTheElementMatchesTheReference() {
        int m = 6;
        int n = 5;
        int k = 4;
        Matrix a = random(ElementType.F32, m, k, 0);
        Matrix b = random(ElementType.F32, k, n, 0);
        MemorySegment aDevice = uploadAtOffset(a, Float.BYTES);
        MemorySegment bDevice = uploadAtOffset(b, 3 * Float.BYTES);
        MemorySegment cDevice = uploadAtOffset(Matrix.filled(ElementType.F32, m, n, m, POISON), Float.BYTES);

        blas.gemm(stream, false, false, m, n, k, 1, aDevice, m, bDevice, k, 0, cDevice, m, ElementType.F32,
                ElementType.F32);

        Matrix result = download(cDevice, Matrix.filled(ElementType.F32, m, n, m, 0));
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double exact = 0;
                double magnitude = 0;
                for (int p = 0; p < k; p++) {
                    exact += a.get(i, p) * b.get(p, j);
                    magnitude += Math.abs(a.get(i, p) * b.get(p, j));
                }
                assertNear(exact, magnitude, k, result.get(i, j), ElementType.F32, "C(" + i + "," + j + ")");
            }
        }
    }

    // ------------------------------------------------------------------------------- the plan cache

    @Test
    void repeatedShapesReuseTheirPlan() {
        MemorySegment a = allocate(64 * Float.BYTES);
        MemorySegment b = allocate(64 * Float.BYTES);
        MemorySegment c = allocate(64 * Float.BYTES);
        DeviceMemory.zero(stream, c);
        ElementType f32 = ElementType.F32;
        ElementType bf16 = ElementType.BF16;
        Runnable product = () -> blas.gemm(stream, false, true, 4, 3, 2, 1, a, 4, b, 3, 0, c, 4, f32, f32);

        product.run();
        product.run();
        assertEquals(1, blas.plansMade(), "the same shape again");

        blas.gemm(stream, false, true, 4, 3, 2, 1, a, 4, b, 3, 1, c, 4, f32, f32);
        assertEquals(2, blas.plansMade(), "beta != 0 is a different plan");
        blas.gemm(stream, false, true, 4, 3, 2, 1, a, 5, b, 3, 0, c, 4, f32, f32);
        assertEquals(3, blas.plansMade(), "another lda");
        blas.gemm(stream, false, true, 4, 3, 2, 1, a.asSlice(Float.BYTES), 4, b, 3, 0, c, 4, f32, f32);
        assertEquals(4, blas.plansMade(), "a less aligned A");
        blas.gemm(stream, false, true, 4, 3, 2, 1, a, 4, b, 3, 0, c, 4, bf16, f32);
        assertEquals(5, blas.plansMade(), "bf16 inputs");
        blas.gemm(stream, false, true, 4, 3, 2, 1, a, 4, b, 3, 0, c, 4, bf16, bf16);
        assertEquals(6, blas.plansMade(), "a bf16 output");

        product.run();
        blas.gemm(stream, false, true, 4, 3, 2, 2.5f, a, 4, b, 3, 0, c, 4, f32, f32);
        blas.gemm(stream, false, true, 4, 3, 2, 1, a, 4, b, 3, 0, c, 4, bf16, f32);
        assertEquals(6, blas.plansMade(), "the first shapes again, alpha aside");
    }

    // ------------------------------------------------------------------------------- argument errors

    @Test
    void badArgumentsAreRefusedBeforeAnythingIsQueued() {
        MemorySegment small = allocate(12 * Float.BYTES);
        MemorySegment big = allocate(64 * Float.BYTES);
        ElementType f32 = ElementType.F32;
        ElementType bf16 = ElementType.BF16;

        assertRefused("lda = 2 is less than the rows of a as stored (a is 3 x 4 with transA = false)",
                () -> blas.gemm(stream, false, false, 3, 2, 4, 1, big, 2, big, 4, 0, big, 3, f32, f32));
        assertRefused("ldb = 1 is less than the rows of b as stored (b is 2 x 4 with transB = true)",
                () -> blas.gemm(stream, false, true, 3, 2, 4, 1, big, 3, big, 1, 0, big, 3, f32, f32));
        assertRefused("ldc = 2 is less than the rows of c as stored (c is 3 x 2)",
                () -> blas.gemm(stream, false, false, 3, 2, 4, 1, big, 3, big, 4, 0, big, 2, f32, f32));
        assertRefused("b holds 44 bytes, needs 48 (b is 4 x 3 with transB = false, ldb = 4, F32)",
                () -> blas.gemm(stream, false, false, 3, 3, 4, 1, big, 3, small.asSlice(0, 44), 4, 0, big, 3,
                        f32, f32));
        assertRefused("c holds 48 bytes, needs 60 (c is 5 x 6, ldc = 5, BF16)",
                () -> blas.gemm(stream, false, false, 5, 6, 1, 1, big, 5, big, 1, 0, small, 5, bf16, bf16));
        // Each matrix is checked as its own type: bf16 inputs, an fp32 output.
        assertRefused("c holds 48 bytes, needs 120 (c is 5 x 6, ldc = 5, F32)",
                () -> blas.gemm(stream, false, false, 5, 6, 1, 1, big, 5, big, 1, 0, small, 5, bf16, f32));
        assertRefused("negative dimension: m=-1 n=2 k=3",
                () -> blas.gemm(stream, false, false, -1, 2, 3, 1, big, 1, big, 3, 0, big, 1, f32, f32));
        assertRefused("k = 0 with beta = 0.0 scales C, it is no product",
                () -> blas.gemm(stream, false, false, 2, 2, 0, 1, big, 2, big, 1, 0, big, 2, f32, f32));
        MemorySegment misaligned = big.asSlice(2);
        assertRefused("a at address 0x" + Long.toHexString(misaligned.address())
                        + " is not a non-NULL multiple of the 4-byte F32 element",
                () -> blas.gemm(stream, false, false, 2, 2, 2, 1, misaligned, 2, big, 2, 0, big, 2, f32, f32));
        assertRefused("c at address 0x" + Long.toHexString(misaligned.address())
                        + " is not a non-NULL multiple of the 4-byte F32 element",
                () -> blas.gemm(stream, false, false, 2, 2, 2, 1, misaligned, 2, big, 2, 0, misaligned, 2, bf16, f32));
        assertRefused("in [7,5] F32 holds 48 bytes, needs 140",
                () -> blas.linearForward(stream, big, small, big, 7, 5, 3, f32, f32));
        assertRefused("in [7,5] BF16 holds 48 bytes, needs 70",
                () -> blas.linearForward(stream, big, small, big, 7, 5, 3, bf16, f32));
        assertEquals(0, blas.plansMade());
    }

    @Test
    void aClosedStreamOrHandleIsRefused() {
        MemorySegment big = allocate(64 * Float.BYTES);
        ElementType f32 = ElementType.F32;
        CudaStream closed = cuda.createStream();
        closed.close();
        IllegalStateException deadStream = assertThrows(IllegalStateException.class,
                () -> blas.gemm(closed, false, false, 2, 2, 2, 1, big, 2, big, 2, 0, big, 2, f32, f32));
        assertEquals("CUDA stream was closed", deadStream.getMessage());

        blas.close();
        IllegalStateException deadHandle = assertThrows(IllegalStateException.class,
                () -> blas.gemm(stream, false, false, 2, 2, 2, 1, big, 2, big, 2, 0, big, 2, f32, f32));
        assertEquals("cuBLASLt handle was closed", deadHandle.getMessage());
        blas.close();
    }

    // ------------------------------------------------------------------------------- checks

    /** f(row, column, p): one term of element (row, column) of a row-major [rows, columns] product over p < depth. */
    @FunctionalInterface
    private interface Term {
        double of(int row, int column, int p);
    }

    /** {@code actual} holds the row-major result as a column-major columns x rows matrix. */
    private void assertRowMajorProduct(Matrix actual, int rows, int columns, int depth, Term term,
            Matrix accumulatedOnto, ElementType type) {
        for (int r = 0; r < rows; r++) {
            for (int col = 0; col < columns; col++) {
                double exact = accumulatedOnto == null ? 0 : accumulatedOnto.getRowMajor(r, col);
                double magnitude = Math.abs(exact);
                for (int p = 0; p < depth; p++) {
                    exact += term.of(r, col, p);
                    magnitude += Math.abs(term.of(r, col, p));
                }
                assertNear(exact, magnitude, depth, actual.getRowMajor(r, col), type, "[" + r + "," + col + "]");
            }
        }
    }

    private void assertNear(double exact, double magnitude, int k, double actual, ElementType type, String what) {
        double tolerance = (k + 2) * 0x1p-23 * magnitude;
        if (type == ElementType.BF16) {
            tolerance += 2 * Math.ulp((float) exact) * 0x1p16;
        }
        if (!(Math.abs(actual - exact) <= tolerance)) {
            fail(what + " = " + actual + ", expected " + exact + " within " + tolerance + " (" + type + ", seed " + seed
                    + ")");
        }
    }

    private void assertPaddingUntouched(Matrix result, Matrix original) {
        for (int j = 0; j < original.cols; j++) {
            for (int i = original.rows; i < original.ld; i++) {
                int written = Float.floatToRawIntBits((float) result.get(i, j));
                if (written != Float.floatToRawIntBits((float) original.get(i, j))) {
                    fail("padding element (" + i + "," + j + ") of C was written: " + result.get(i, j));
                }
            }
        }
    }

    private static void assertRefused(String message, Executable call) {
        assertEquals(message, assertThrows(IllegalArgumentException.class, call).getMessage());
    }

    // ------------------------------------------------------------------------------- data

    /**
     * A host matrix, column-major {@code rows x cols} with leading dimension {@code ld}, whose values
     * are exactly representable in {@code type}.
     */
    private record Matrix(ElementType type, int rows, int cols, int ld, double[] values) {
        static Matrix filled(ElementType type, int rows, int cols, int ld, float value) {
            double[] values = new double[Math.max(0, ld * cols)];
            Arrays.fill(values, value);
            return new Matrix(type, rows, cols, ld, values);
        }

        double get(int i, int j) {
            return values[i + j * ld];
        }

        /** Element [r, c] of the row-major matrix that this column-major matrix stores transposed. */
        double getRowMajor(int r, int c) {
            return get(c, r);
        }
    }

    private Matrix random(ElementType type, int rows, int cols, int padding) {
        Matrix matrix = Matrix.filled(type, rows, cols, rows + padding, POISON);
        for (int j = 0; j < cols; j++) {
            for (int i = 0; i < rows; i++) {
                matrix.values[i + j * matrix.ld] = representable(type, (float) random.nextGaussian());
            }
        }
        return matrix;
    }

    /** A row-major [rows, columns] matrix: column-major columns x rows. */
    private Matrix randomRowMajor(ElementType type, int rows, int columns) {
        return random(type, columns, rows, 0);
    }

    private static double representable(ElementType type, float value) {
        return type == ElementType.F32 ? value : Float.intBitsToFloat(bf16Bits(value) << 16);
    }

    /** Round to nearest even; the values here are finite and far from overflow. */
    private static int bf16Bits(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (bits >>> 16) | 0x0040;
        }
        return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
    }

    private MemorySegment allocate(long bytes) {
        DeviceMemory memory = cuda.allocate(bytes);
        allocations.add(memory);
        return memory.segment();
    }

    private MemorySegment upload(Matrix matrix) {
        return uploadAtOffset(matrix, 0);
    }

    /** The matrix {@code offset} bytes into a fresh (256-byte aligned) allocation: aligned only that much. */
    private MemorySegment uploadAtOffset(Matrix matrix, long offset) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate((long) matrix.values.length * matrix.type.bytes);
            for (int index = 0; index < matrix.values.length; index++) {
                float value = (float) matrix.values[index];
                if (matrix.type == ElementType.F32) {
                    host.setAtIndex(JAVA_FLOAT, index, value);
                } else {
                    host.setAtIndex(JAVA_SHORT, index, (short) bf16Bits(value));
                }
            }
            MemorySegment device = allocate(offset + host.byteSize()).asSlice(offset);
            // From pageable memory: staged by CUDA before the call returns, so the arena may close.
            DeviceMemory.copyFromHost(stream, device, host);
            return device;
        }
    }

    /** The device copy of a matrix shaped like {@code like}. */
    private Matrix download(MemorySegment device, Matrix like) {
        MemorySegment host = Arena.ofAuto().allocate(device.byteSize());
        DeviceMemory.download(stream, host, device);
        double[] values = new double[like.values.length];
        for (int index = 0; index < values.length; index++) {
            values[index] = like.type == ElementType.F32
                    ? host.getAtIndex(JAVA_FLOAT, index)
                    : Float.intBitsToFloat(Short.toUnsignedInt(host.getAtIndex(JAVA_SHORT, index)) << 16);
        }
        return new Matrix(like.type, like.rows, like.cols, like.ld, values);
    }
}
