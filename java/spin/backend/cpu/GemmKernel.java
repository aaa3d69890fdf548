package spin.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked inner kernel of {@link Gemm}: one {@code ROWS x COLS} tile of C from a packed
 * sliver of op(A) and a packed sliver of op(B), both {@code kc} deep.
 *
 * <p>Packed layouts (written by Gemm's packing): the A sliver holds, for each p in [0, kc), the
 * {@code ROWS} values op(A)(i, p) contiguously; the B sliver holds, for each p, the {@code COLS}
 * values op(B)(p, j) contiguously, as two vectors. Rows and columns beyond the matrix edge are
 * packed as zeros, so the kernel always computes a full tile; Gemm adds the part inside C into C.
 *
 * <p>The tile is 12 rows by two vectors: 24 accumulators, two B vectors and one broadcast fill 27
 * of the 32 AVX-512 registers, and each step issues 24 FMAs against 14 loads, enough to keep
 * the FMA pipes busy. Every accumulator lane sums its products in increasing p with FMA, whatever
 * the tile's position, which is what makes Gemm's results independent of the schedule.
 * With 256-bit vectors the same code runs correctly but spills registers.
 */
final class GemmKernel {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int ROWS = 12;
    static final int COLS = 2 * F.length();


    private GemmKernel() {}

    /**
     * Computes the A sliver at {@code a[aStart]} times the B sliver at {@code b[bStart]} into
     * {@code tile}, a row-major ROWS x COLS array.
     */
    static void multiply(int kc, float[] a, int aStart, float[] b, int bStart, float[] tile) {
        // C2 stops inlining once a method's IR grows past a fixed node budget, and a Vector API call
        // left out of line boxes its vectors (10x slower). So this method holds only the FMA loop
        // and array stores, with one shared zero; adding the tile into C happens in Gemm.
        FloatVector zero = FloatVector.zero(F);
        FloatVector c00 = zero, c01 = zero;
        FloatVector c10 = zero, c11 = zero;
        FloatVector c20 = zero, c21 = zero;
        FloatVector c30 = zero, c31 = zero;
        FloatVector c40 = zero, c41 = zero;
        FloatVector c50 = zero, c51 = zero;
        FloatVector c60 = zero, c61 = zero;
        FloatVector c70 = zero, c71 = zero;
        FloatVector c80 = zero, c81 = zero;
        FloatVector c90 = zero, c91 = zero;
        FloatVector ca0 = zero, ca1 = zero;
        FloatVector cb0 = zero, cb1 = zero;
        for (int p = 0; p < kc; p++) {
            int ap = aStart + p * ROWS;
            int bp = bStart + p * COLS;
            FloatVector b0 = FloatVector.fromArray(F, b, bp);
            FloatVector b1 = FloatVector.fromArray(F, b, bp + F.length());
            FloatVector x = FloatVector.broadcast(F, a[ap]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(F, a[ap + 1]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(F, a[ap + 2]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(F, a[ap + 3]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(F, a[ap + 4]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(F, a[ap + 5]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
            x = FloatVector.broadcast(F, a[ap + 6]);
            c60 = x.fma(b0, c60);
            c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(F, a[ap + 7]);
            c70 = x.fma(b0, c70);
            c71 = x.fma(b1, c71);
            x = FloatVector.broadcast(F, a[ap + 8]);
            c80 = x.fma(b0, c80);
            c81 = x.fma(b1, c81);
            x = FloatVector.broadcast(F, a[ap + 9]);
            c90 = x.fma(b0, c90);
            c91 = x.fma(b1, c91);
            x = FloatVector.broadcast(F, a[ap + 10]);
            ca0 = x.fma(b0, ca0);
            ca1 = x.fma(b1, ca1);
            x = FloatVector.broadcast(F, a[ap + 11]);
            cb0 = x.fma(b0, cb0);
            cb1 = x.fma(b1, cb1);
        }
        c00.intoArray(tile, 0 * COLS);
        c01.intoArray(tile, 0 * COLS + F.length());
        c10.intoArray(tile, 1 * COLS);
        c11.intoArray(tile, 1 * COLS + F.length());
        c20.intoArray(tile, 2 * COLS);
        c21.intoArray(tile, 2 * COLS + F.length());
        c30.intoArray(tile, 3 * COLS);
        c31.intoArray(tile, 3 * COLS + F.length());
        c40.intoArray(tile, 4 * COLS);
        c41.intoArray(tile, 4 * COLS + F.length());
        c50.intoArray(tile, 5 * COLS);
        c51.intoArray(tile, 5 * COLS + F.length());
        c60.intoArray(tile, 6 * COLS);
        c61.intoArray(tile, 6 * COLS + F.length());
        c70.intoArray(tile, 7 * COLS);
        c71.intoArray(tile, 7 * COLS + F.length());
        c80.intoArray(tile, 8 * COLS);
        c81.intoArray(tile, 8 * COLS + F.length());
        c90.intoArray(tile, 9 * COLS);
        c91.intoArray(tile, 9 * COLS + F.length());
        ca0.intoArray(tile, 10 * COLS);
        ca1.intoArray(tile, 10 * COLS + F.length());
        cb0.intoArray(tile, 11 * COLS);
        cb1.intoArray(tile, 11 * COLS + F.length());
    }
}
