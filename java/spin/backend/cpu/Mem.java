package spin.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/** Element access and the few vector loops the CPU ops share; indices are in elements. */
final class Mem {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT;

    private Mem() {}

    static float f(MemorySegment s, long i) {
        return s.getAtIndex(FLOAT, i);
    }

    static void f(MemorySegment s, long i, float v) {
        s.setAtIndex(FLOAT, i, v);
    }

    static int i32(MemorySegment s, long i) {
        return s.getAtIndex(INT, i);
    }

    static short bf16(MemorySegment s, long i) {
        return s.getAtIndex(SHORT, i);
    }

    static void bf16(MemorySegment s, long i, short v) {
        s.setAtIndex(SHORT, i, v);
    }

    static FloatVector load(MemorySegment s, long i) {
        return FloatVector.fromMemorySegment(F, s, i * Float.BYTES, ORDER);
    }

    static void store(FloatVector v, MemorySegment s, long i) {
        v.intoMemorySegment(s, i * Float.BYTES, ORDER);
    }

    /** sum over j < n of a[ai + j] * b[bi + j]. */
    static float dot(MemorySegment a, long ai, MemorySegment b, long bi, int n) {
        FloatVector acc = FloatVector.zero(F);
        int j = 0;
        for (int bound = F.loopBound(n); j < bound; j += F.length()) {
            acc = load(a, ai + j).fma(load(b, bi + j), acc);
        }
        float s = sumLanes(acc);
        for (; j < n; j++) {
            s += f(a, ai + j) * f(b, bi + j);
        }
        return s;
    }

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUND_MAGIC = 12582912f; // 1.5 * 2^23: adding it rounds to an integer
    private static final float EXP_MIN = -87.33654f;
    private static final float EXP_MAX = 88f;

    /**
     * e^x per lane to about 2 ulp, from adds, multiplies, FMAs and bit shifts only: unlike
     * {@code lanewise(EXP)}, whose intrinsic and fallback may round differently, this gives the same
     * bits interpreted and compiled. Inputs below ~-87.3 give 0 (never NaN), so exp(-inf) = 0;
     * inputs above 88 saturate at e^88 (callers exponentiate differences from a maximum, all <= 0).
     */
    static FloatVector exp(FloatVector x) {
        FloatVector clamped = x.max(EXP_MIN).min(EXP_MAX);
        FloatVector shifted = clamped.fma(FloatVector.broadcast(F, LOG2E), FloatVector.broadcast(F, ROUND_MAGIC));
        FloatVector k = shifted.sub(ROUND_MAGIC);
        FloatVector r = k.fma(FloatVector.broadcast(F, -LN2_HI), clamped);
        r = k.fma(FloatVector.broadcast(F, -LN2_LO), r);
        // exp(r) on |r| <= ln2/2 by its Taylor series to degree 7 (Horner form): truncation < 0.1 ulp.
        FloatVector p = FloatVector.broadcast(F, 1.9841270e-4f);
        p = p.fma(r, FloatVector.broadcast(F, 1.3888889e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 8.3333333e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 4.1666667e-2f));
        p = p.fma(r, FloatVector.broadcast(F, 1.6666667e-1f));
        p = p.fma(r, FloatVector.broadcast(F, 0.5f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        IntVector exponent = shifted.reinterpretAsInts().sub(0x4B400000 - 127).lanewise(VectorOperators.LSHL, 23);
        FloatVector scaled = p.mul(exponent.reinterpretAsFloats());
        return scaled.blend(0f, x.compare(VectorOperators.LT, EXP_MIN));
    }

    /** Scalar e^x with exactly the arithmetic of {@link #exp(FloatVector)}, for loop tails. */
    static float exp(float x) {
        return exp(FloatVector.broadcast(F, x)).lane(0);
    }

    /** a[i] = e^(a[i] - shift) for i < n; -inf entries become 0. */
    static void expShifted(float[] a, int n, float shift) {
        expShifted(a, 0, n, shift);
    }

    /**
     * a[from + i] = e^(a[from + i] - shift) for i < n; -inf entries become 0. The last, partial
     * vector is masked (a scalar {@link #exp(float)} per element would cost a vector exp each).
     */
    static void expShifted(float[] a, int from, int n, float shift) {
        FloatVector shiftV = FloatVector.broadcast(F, shift);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            exp(FloatVector.fromArray(F, a, from + i).sub(shiftV)).intoArray(a, from + i);
        }
        if (i < n) {
            VectorMask<Float> tail = F.indexInRange(i, n);
            exp(FloatVector.fromArray(F, a, from + i, tail).sub(shiftV)).intoArray(a, from + i, tail);
        }
    }

    /**
     * Sum of the lanes by a fixed pairwise tree: the upper half of the lanes is added onto the lower
     * half until one lane is left (for 16 lanes, lane 0 ends as
     * {@code ((v0 + v8) + (v4 + v12)) + ((v2 + v10) + (v6 + v14))} plus the odd lanes likewise).
     * {@code reduceLanes(ADD)} leaves the order unspecified, and interpreted and JIT-compiled code
     * do use different orders, which breaks bit-exact results; this order is fixed by the vector
     * length alone, and costs log2(lanes) shuffles and adds instead of one extraction and add per lane.
     */
    static float sumLanes(FloatVector v) {
        for (VectorShuffle<Float> fold : FOLDS) {
            v = v.add(v.rearrange(fold));
        }
        return v.lane(0);
    }

    /** Shuffles that bring lane (i + half) to lane i, for half = lanes/2, lanes/4, ..., 1. */
    private static final VectorShuffle<Float>[] FOLDS = folds();

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static VectorShuffle<Float>[] folds() {
        int count = Integer.numberOfTrailingZeros(F.length());
        VectorShuffle<Float>[] folds = new VectorShuffle[count];
        for (int f = 0; f < count; f++) {
            int half = F.length() >> (f + 1);
            folds[f] = VectorShuffle.fromOp(F, lane -> (lane + half) % F.length());
        }
        return folds;
    }

    /** y[yi + j] += alpha * x[xi + j] for j < n. */
    static void axpy(float alpha, MemorySegment x, long xi, MemorySegment y, long yi, int n) {
        FloatVector av = FloatVector.broadcast(F, alpha);
        int j = 0;
        for (int bound = F.loopBound(n); j < bound; j += F.length()) {
            store(load(x, xi + j).fma(av, load(y, yi + j)), y, yi + j);
        }
        for (; j < n; j++) {
            f(y, yi + j, f(y, yi + j) + alpha * f(x, xi + j));
        }
    }

    /** y[yi + j] *= alpha for j < n. */
    static void scale(float alpha, MemorySegment y, long yi, int n) {
        FloatVector av = FloatVector.broadcast(F, alpha);
        int j = 0;
        for (int bound = F.loopBound(n); j < bound; j += F.length()) {
            store(load(y, yi + j).mul(av), y, yi + j);
        }
        for (; j < n; j++) {
            f(y, yi + j, f(y, yi + j) * alpha);
        }
    }
}
