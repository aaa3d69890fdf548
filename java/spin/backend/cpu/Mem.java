package spin.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
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

    /**
     * Sum of the lanes in lane order. {@code reduceLanes(ADD)} leaves the order unspecified, and
     * interpreted and JIT-compiled code do use different orders, which breaks bit-exact results.
     */
    static float sumLanes(FloatVector v) {
        float s = 0f;
        for (int i = 0; i < v.length(); i++) {
            s += v.lane(i);
        }
        return s;
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
