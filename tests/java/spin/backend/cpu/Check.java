package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.ToDoubleFunction;

/** Shared test arithmetic: random inputs, relative errors, central finite differences in fp64. */
final class Check {
    private Check() {}

    /** A fresh seed per run, printed in every failure message so a failure can be replayed. */
    static long freshSeed() {
        return System.nanoTime();
    }

    static float[] gaussian(Random rng, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rng.nextGaussian() * std);
        }
        return a;
    }

    static double[] widen(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    static float[] nanFilled(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, Float.NaN);
        return a;
    }

    /** ||actual - expected|| / ||expected|| (or the absolute norm when expected is all zeros). */
    static double relativeError(float[] actual, double[] expected) {
        if (actual.length != expected.length) {
            throw new AssertionError("length " + actual.length + " != " + expected.length);
        }
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.length; i++) {
            if (Float.isNaN(actual[i])) {
                return Double.POSITIVE_INFINITY;
            }
            double e = actual[i] - expected[i];
            diff += e * e;
            norm += expected[i] * expected[i];
        }
        return norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
    }

    static void assertClose(String what, float[] actual, double[] expected, double tolerance, long seed) {
        double err = relativeError(actual, expected);
        assertTrue(err <= tolerance, what + ": relative error " + err + " > " + tolerance + " (seed " + seed + ")");
    }

    /** Asserts that the expected array is not degenerate, so a match means something. */
    static void assertNonTrivial(String what, double[] expected) {
        double norm = 0;
        for (double v : expected) {
            norm += v * v;
        }
        assertTrue(norm > 1e-12, what + ": the reference is all zeros, the comparison would prove nothing");
    }

    /**
     * Central differences of a scalar fp64 function: d f / d x[i] for every i.
     * The step is relative to the element's size; fp64 keeps the truncation and rounding error
     * around 1e-9, far below the fp32 tolerances the tests use.
     */
    static double[] numericGradient(double[] x, ToDoubleFunction<double[]> f) {
        double[] grad = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double saved = x[i];
            double h = 1e-6 * Math.max(1, Math.abs(saved));
            x[i] = saved + h;
            double up = f.applyAsDouble(x);
            x[i] = saved - h;
            double down = f.applyAsDouble(x);
            x[i] = saved;
            grad[i] = (up - down) / (2 * h);
        }
        return grad;
    }

    /** sum_i out[i] * probe[i]: turns an op into the scalar whose gradient wrt out is probe. */
    static double probe(double[] out, float[] probe) {
        double s = 0;
        for (int i = 0; i < out.length; i++) {
            s += out[i] * probe[i];
        }
        return s;
    }
}
