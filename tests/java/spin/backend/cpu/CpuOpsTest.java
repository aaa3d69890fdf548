package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.backend.cpu.Check.assertClose;
import static spin.backend.cpu.Check.assertNonTrivial;
import static spin.backend.cpu.Check.gaussian;
import static spin.backend.cpu.Check.nanFilled;
import static spin.backend.cpu.Check.numericGradient;
import static spin.backend.cpu.Check.probe;
import static spin.backend.cpu.Check.widen;

import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.Tensor;

/**
 * Tier 1 of the test plan: each CPU op's fp32 forward against a naive fp64 implementation
 * ({@link Reference64}) and its backward against central finite differences of that fp64
 * implementation, on fresh random inputs. Outputs are poisoned with NaN before each run, and
 * parameter gradients are pre-filled to check that they accumulate.
 *
 * <p>Tolerances: fp32 forward ops with short reductions stay within ~1e-6 relative error of fp64;
 * 1e-5 leaves room for reductions of a few hundred terms. Backward tolerances are 1e-4: the fp32
 * backward's own rounding (~1e-6) plus the finite-difference error of the fp64 reference (~1e-8).
 */
class CpuOpsTest {
    private static final double FORWARD_TOL = 1e-5;
    private static final double BACKWARD_TOL = 1e-4;

    private static CpuBackend cpu;
    private final long seed = Check.freshSeed();
    private final Random rng = new Random(seed);

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
    }

    private Tensor poisoned(int... shape) {
        return cpu.fromHost(nanFilled((int) Tensor.elementCount(shape)), shape);
    }

    @Test
    void embeddingGathersRowsAndScattersGradientsWithRepeats() {
        int vocab = 11, c = 37;
        int[] ids = {3, 0, 10, 3, 7, 3};
        float[] table = gaussian(rng, vocab * c, 1);
        float[] dOut = gaussian(rng, ids.length * c, 1);
        float[] initialGrad = gaussian(rng, vocab * c, 1);
        try (Tensor t = cpu.fromHost(table, vocab, c); Tensor idT = cpu.fromHost(ids, ids.length);
                Tensor out = poisoned(ids.length, c); Tensor dy = cpu.fromHost(dOut, ids.length, c);
                Tensor dTable = cpu.fromHost(initialGrad, vocab, c)) {
            cpu.embeddingForward(out, idT, t);
            double[] expected = Reference64.embedding(ids, widen(table), c);
            assertClose("embedding forward", cpu.read(out), expected, 0, seed);

            cpu.embeddingBackward(dTable, idT, dy);
            double[] numeric = numericGradient(widen(table), x -> probe(Reference64.embedding(ids, x, c), dOut));
            for (int i = 0; i < numeric.length; i++) {
                numeric[i] += initialGrad[i];
            }
            assertClose("embedding dTable (accumulated)", cpu.read(dTable), numeric, BACKWARD_TOL, seed);
        }
    }

    @Test
    void embeddingRejectsIdsOutsideTheVocabulary() {
        try (Tensor t = cpu.allocate(spin.backend.DType.F32, 4, 3); Tensor ids = cpu.fromHost(new int[] {1, 4}, 2);
                Tensor out = cpu.allocate(spin.backend.DType.F32, 2, 3)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cpu.embeddingForward(out, ids, t));
            assertTrue(e.getMessage().contains("token id 4 at position 1"), e.getMessage());
        }
    }

    @Test
    void intWritesFillI32TensorsOfTheSameLengthOnly() {
        try (Tensor ids = cpu.allocate(spin.backend.DType.I32, 2, 3); Tensor floats = cpu.allocate(spin.backend.DType.F32, 6)) {
            cpu.write(ids, new int[] {4, -1, 7, 0, 9, 2});
            assertArrayEquals(new int[] {4, -1, 7, 0, 9, 2}, cpu.readInts(ids));
            assertThrows(IllegalArgumentException.class, () -> cpu.write(ids, new int[] {1, 2}));
            assertThrows(IllegalArgumentException.class, () -> cpu.write(floats, new int[] {1, 2, 3, 4, 5, 6}));
        }
    }

    @Test
    void matmulForwardAndBackward() {
        int rows = 13, inF = 29, outF = 19;
        float[] in = gaussian(rng, rows * inF, 1);
        float[] w = gaussian(rng, outF * inF, 0.5);
        float[] dOut = gaussian(rng, rows * outF, 1);
        float[] initialGrad = gaussian(rng, outF * inF, 1);
        try (Tensor x = cpu.fromHost(in, rows, inF); Tensor wt = cpu.fromHost(w, outF, inF);
                Tensor out = poisoned(rows, outF); Tensor dy = cpu.fromHost(dOut, rows, outF);
                Tensor dx = poisoned(rows, inF); Tensor dw = cpu.fromHost(initialGrad, outF, inF)) {
            cpu.matmulForward(out, x, wt);
            assertClose("matmul forward", cpu.read(out), Reference64.matmul(widen(in), widen(w), rows, inF, outF),
                    FORWARD_TOL, seed);

            cpu.matmulBackward(dx, dw, dy, x, wt);
            double[] wd = widen(w);
            double[] numericIn = numericGradient(widen(in), v -> probe(Reference64.matmul(v, wd, rows, inF, outF), dOut));
            assertNonTrivial("dIn", numericIn);
            assertClose("matmul dIn", cpu.read(dx), numericIn, BACKWARD_TOL, seed);
            double[] ind = widen(in);
            double[] numericW = numericGradient(widen(w), v -> probe(Reference64.matmul(ind, v, rows, inF, outF), dOut));
            for (int i = 0; i < numericW.length; i++) {
                numericW[i] += initialGrad[i];
            }
            assertClose("matmul dWeight (accumulated)", cpu.read(dw), numericW, BACKWARD_TOL, seed);
        }
    }

    @Test
    void rmsnormForwardAndBackward() {
        int rows = 6, c = 45;
        float eps = 1e-5f;
        float[] in = gaussian(rng, rows * c, 2);
        float[] w = gaussian(rng, c, 1);
        float[] dOut = gaussian(rng, rows * c, 1);
        float[] initialGrad = gaussian(rng, c, 1);
        try (Tensor x = cpu.fromHost(in, rows, c); Tensor wt = cpu.fromHost(w, c); Tensor out = poisoned(rows, c);
                Tensor rstd = poisoned(rows); Tensor dy = cpu.fromHost(dOut, rows, c); Tensor dx = poisoned(rows, c);
                Tensor dw = cpu.fromHost(initialGrad, c)) {
            cpu.rmsnormForward(out, rstd, x, wt, eps);
            assertClose("rmsnorm forward", cpu.read(out), Reference64.rmsnorm(widen(in), widen(w), rows, c, eps),
                    FORWARD_TOL, seed);

            cpu.rmsnormBackward(dx, dw, dy, x, wt, rstd);
            double[] wd = widen(w), ind = widen(in);
            double[] numericIn = numericGradient(widen(in), v -> probe(Reference64.rmsnorm(v, wd, rows, c, eps), dOut));
            assertClose("rmsnorm dIn", cpu.read(dx), numericIn, BACKWARD_TOL, seed);
            double[] numericW = numericGradient(widen(w), v -> probe(Reference64.rmsnorm(ind, v, rows, c, eps), dOut));
            for (int i = 0; i < c; i++) {
                numericW[i] += initialGrad[i];
            }
            assertClose("rmsnorm dWeight (accumulated)", cpu.read(dw), numericW, BACKWARD_TOL, seed);
        }
    }

    @Test
    void ropeRotatesHalvesAndItsBackwardIsTheTranspose() {
        int b = 2, t = 5, heads = 3, d = 8;
        float theta = 10000f;
        int[] positions = {0, 1, 2, 3, 4, 7, 8, 9, 40, 41};
        float[] in = gaussian(rng, b * t * heads * d, 1);
        float[] dOut = gaussian(rng, in.length, 1);
        try (Tensor x = cpu.fromHost(in, b, t, heads, d); Tensor pos = cpu.fromHost(positions, b, t);
                Tensor out = poisoned(b, t, heads, d); Tensor dy = cpu.fromHost(dOut, b, t, heads, d);
                Tensor dx = poisoned(b, t, heads, d)) {
            cpu.ropeForward(out, x, pos, theta);
            assertClose("rope forward", cpu.read(out), Reference64.rope(widen(in), positions, heads, d, theta),
                    FORWARD_TOL, seed);
            cpu.ropeBackward(dx, dy, pos, theta);
            double[] numeric = numericGradient(widen(in), v -> probe(Reference64.rope(v, positions, heads, d, theta), dOut));
            assertClose("rope dIn", cpu.read(dx), numeric, BACKWARD_TOL, seed);
        }
    }

    /** Sliding window shorter than T, GQA, key-mask holes, and a sequence whose first queries see nothing. */
    @Test
    void attentionWithWindowGqaAndMaskHoles() {
        checkAttention(2, 9, 4, 2, 8, 4, new int[] {1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1}, true);
    }

    /** T beyond one key block (64) so the online softmax rescales across blocks; no window. */
    @Test
    void attentionAcrossKeyBlocksWithoutWindow() {
        int t = 150;
        int[] mask = new int[t];
        java.util.Arrays.fill(mask, 1);
        mask[5] = 0;
        mask[100] = 0;
        checkAttention(1, t, 2, 1, 16, 0, mask, false);
    }

    private void checkAttention(int b, int t, int h, int kvh, int d, int window, int[] mask, boolean checkAllGradients) {
        float[] q = gaussian(rng, b * t * h * d, 1);
        float[] k = gaussian(rng, b * t * kvh * d, 1);
        float[] v = gaussian(rng, b * t * kvh * d, 1);
        float[] dOut = gaussian(rng, q.length, 1);
        try (Tensor qt = cpu.fromHost(q, b, t, h, d); Tensor kt = cpu.fromHost(k, b, t, kvh, d);
                Tensor vt = cpu.fromHost(v, b, t, kvh, d); Tensor m = cpu.fromHost(mask, b, t);
                Tensor out = poisoned(b, t, h, d); Tensor lse = poisoned(b, h, t); Tensor dy = cpu.fromHost(dOut, b, t, h, d);
                Tensor dq = poisoned(b, t, h, d); Tensor dk = poisoned(b, t, kvh, d); Tensor dv = poisoned(b, t, kvh, d)) {
            cpu.attentionForward(out, lse, qt, kt, vt, m, window);
            double[] qd = widen(q), kd = widen(k), vd = widen(v);
            double[] expected = Reference64.attention(qd, kd, vd, mask, b, t, h, kvh, d, window);
            assertNonTrivial("attention output", expected);
            assertClose("attention forward", cpu.read(out), expected, FORWARD_TOL, seed);

            cpu.attentionBackward(dq, dk, dv, dy, qt, kt, vt, m, out, lse, window);
            if (!checkAllGradients) {
                // Finite differences over every element of a T=150 problem are too slow; dv has a
                // closed form through the reference instead: dv = P^T dOut, checked via linearity in v.
                double[] numericV = numericGradient(vd.clone(),
                        x -> probe(Reference64.attention(qd, kd, x, mask, b, t, h, kvh, d, window), dOut));
                assertClose("attention dv", cpu.read(dv), numericV, BACKWARD_TOL, seed);
                return;
            }
            double[] numericQ = numericGradient(qd.clone(),
                    x -> probe(Reference64.attention(x, kd, vd, mask, b, t, h, kvh, d, window), dOut));
            double[] numericK = numericGradient(kd.clone(),
                    x -> probe(Reference64.attention(qd, x, vd, mask, b, t, h, kvh, d, window), dOut));
            double[] numericV = numericGradient(vd.clone(),
                    x -> probe(Reference64.attention(qd, kd, x, mask, b, t, h, kvh, d, window), dOut));
            assertClose("attention dq", cpu.read(dq), numericQ, BACKWARD_TOL, seed);
            assertClose("attention dk", cpu.read(dk), numericK, BACKWARD_TOL, seed);
            assertClose("attention dv", cpu.read(dv), numericV, BACKWARD_TOL, seed);
        }
    }

    @Test
    void attentionRowWithNoVisibleKeyIsZeroWithInfiniteLse() {
        int t = 3, d = 4;
        try (Tensor q = cpu.fromHost(gaussian(rng, t * d, 1), 1, t, 1, d); Tensor k = cpu.fromHost(gaussian(rng, t * d, 1), 1, t, 1, d);
                Tensor v = cpu.fromHost(gaussian(rng, t * d, 1), 1, t, 1, d); Tensor m = cpu.fromHost(new int[] {0, 1, 1}, 1, t);
                Tensor out = poisoned(1, t, 1, d); Tensor lse = poisoned(1, 1, t)) {
            cpu.attentionForward(out, lse, q, k, v, m, 0);
            float[] o = cpu.read(out);
            for (int c = 0; c < d; c++) {
                assertEquals(0f, o[c]);
            }
            assertEquals(Float.NEGATIVE_INFINITY, cpu.read(lse)[0]);
        }
    }

    @Test
    void swigluForwardAndBackward() {
        int n = 77;
        float[] gate = gaussian(rng, n, 3);
        float[] up = gaussian(rng, n, 1);
        float[] dOut = gaussian(rng, n, 1);
        try (Tensor g = cpu.fromHost(gate, n); Tensor u = cpu.fromHost(up, n); Tensor out = poisoned(n);
                Tensor dy = cpu.fromHost(dOut, n); Tensor dg = poisoned(n); Tensor du = poisoned(n)) {
            cpu.swigluForward(out, g, u);
            assertClose("swiglu forward", cpu.read(out), Reference64.swiglu(widen(gate), widen(up)), FORWARD_TOL, seed);
            cpu.swigluBackward(dg, du, dy, g, u);
            double[] gd = widen(gate), ud = widen(up);
            assertClose("swiglu dGate", cpu.read(dg), numericGradient(gd.clone(), x -> probe(Reference64.swiglu(x, ud), dOut)),
                    BACKWARD_TOL, seed);
            assertClose("swiglu dUp", cpu.read(du), numericGradient(ud.clone(), x -> probe(Reference64.swiglu(gd, x), dOut)),
                    BACKWARD_TOL, seed);
        }
    }

    @Test
    void logprobGatherWithIgnoredLabels() {
        int n = 7, vocab = 53;
        float[] logits = gaussian(rng, n * vocab, 4);
        int[] labels = {5, Backend.IGNORE_INDEX, 0, 52, 17, Backend.IGNORE_INDEX, 17};
        float[] dLogp = gaussian(rng, n, 1);
        try (Tensor x = cpu.fromHost(logits, n, vocab); Tensor lab = cpu.fromHost(labels, n); Tensor logp = poisoned(n);
                Tensor lse = poisoned(n); Tensor dlp = cpu.fromHost(dLogp, n); Tensor dx = poisoned(n, vocab)) {
            cpu.logprobForward(logp, lse, x, lab);
            double[] expected = Reference64.logprob(widen(logits), labels, vocab, Backend.IGNORE_INDEX);
            assertClose("logprob forward", cpu.read(logp), expected, FORWARD_TOL, seed);
            cpu.logprobBackward(dx, dlp, x, lab, lse);
            double[] numeric = numericGradient(widen(logits),
                    v -> probe(Reference64.logprob(v, labels, vocab, Backend.IGNORE_INDEX), dLogp));
            assertClose("logprob dLogits", cpu.read(dx), numeric, BACKWARD_TOL, seed);
        }
    }

    @Test
    void logprobRejectsLabelsOutsideTheVocabulary() {
        try (Tensor x = cpu.allocate(spin.backend.DType.F32, 2, 5); Tensor lab = cpu.fromHost(new int[] {1, 5}, 2);
                Tensor logp = cpu.allocate(spin.backend.DType.F32, 2); Tensor lse = cpu.allocate(spin.backend.DType.F32, 2)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cpu.logprobForward(logp, lse, x, lab));
            assertTrue(e.getMessage().contains("label 5 at position 1"), e.getMessage());
        }
    }

    @Test
    void rowSumForwardAndBackward() {
        int b = 3, t = 11;
        float[] in = gaussian(rng, b * t, 1);
        float[] dOut = gaussian(rng, b, 1);
        try (Tensor x = cpu.fromHost(in, b, t); Tensor out = poisoned(b); Tensor dy = cpu.fromHost(dOut, b);
                Tensor dx = poisoned(b, t)) {
            cpu.rowSumForward(out, x);
            double[] expected = new double[b];
            for (int i = 0; i < b * t; i++) {
                expected[i / t] += in[i];
            }
            assertClose("rowSum forward", cpu.read(out), expected, FORWARD_TOL, seed);
            cpu.rowSumBackward(dx, dy);
            double[] numeric = numericGradient(widen(in), v -> {
                double s = 0;
                for (int i = 0; i < v.length; i++) {
                    s += v[i] * dOut[i / t];
                }
                return s;
            });
            assertClose("rowSum dIn", cpu.read(dx), numeric, BACKWARD_TOL, seed);
        }
    }

    @Test
    void elementwiseAddScaleAndReductions() {
        int n = 100_003;
        float[] a = gaussian(rng, n, 1);
        float[] bArr = gaussian(rng, n, 1);
        try (Tensor x = cpu.fromHost(a, n); Tensor y = cpu.fromHost(bArr, n); Tensor out = poisoned(n)) {
            cpu.add(out, x, y);
            double[] sum = new double[n];
            double total = 0, squares = 0;
            for (int i = 0; i < n; i++) {
                sum[i] = (double) a[i] + bArr[i];
                total += a[i];
                squares += (double) a[i] * a[i];
            }
            assertClose("add", cpu.read(out), sum, 1e-7, seed);
            cpu.accumulate(out, x);
            cpu.scale(out, 0.5f);
            double[] expected = new double[n];
            for (int i = 0; i < n; i++) {
                expected[i] = (sum[i] + a[i]) * 0.5;
            }
            assertClose("accumulate then scale", cpu.read(out), expected, 1e-7, seed);
            assertEquals(total, cpu.sum(x), 1e-9 * Math.max(1, Math.abs(total)));
            assertEquals(squares, cpu.sumOfSquares(x), 1e-9 * squares);
            assertEquals(Math.sqrt(squares + cpu.sumOfSquares(y)), cpu.globalNorm(java.util.List.of(x, y)), 1e-9 * Math.sqrt(squares));
            cpu.fill(out, 2.5f);
            for (float f : cpu.read(out)) {
                assertEquals(2.5f, f);
            }
        }
    }

    @Test
    void gradientsOfSharedParametersAccumulateAcrossCalls() {
        int rows = 4, inF = 6, outF = 5;
        float[] in = gaussian(rng, rows * inF, 1);
        float[] w = gaussian(rng, outF * inF, 1);
        float[] dOut = gaussian(rng, rows * outF, 1);
        try (Tensor x = cpu.fromHost(in, rows, inF); Tensor wt = cpu.fromHost(w, outF, inF); Tensor dy = cpu.fromHost(dOut, rows, outF);
                Tensor once = cpu.allocate(spin.backend.DType.F32, outF, inF); Tensor twice = cpu.allocate(spin.backend.DType.F32, outF, inF)) {
            cpu.matmulBackward(null, once, dy, x, wt);
            cpu.matmulBackward(null, twice, dy, x, wt);
            cpu.matmulBackward(null, twice, dy, x, wt);
            float[] a = cpu.read(once), b = cpu.read(twice);
            for (int i = 0; i < a.length; i++) {
                assertEquals(2 * a[i], b[i], 1e-6f * Math.max(1, Math.abs(b[i])));
            }
        }
    }

    @Test
    void viewsShareMemoryWithTheirParent() {
        try (Tensor flat = cpu.fromHost(new float[] {1, 2, 3, 4, 5, 6}, 6)) {
            Tensor second = flat.view(2, 2, 2);
            cpu.fill(second, 9f);
            assertArrayEquals(new float[] {1, 2, 9, 9, 9, 9}, cpu.read(flat));
            assertThrows(IndexOutOfBoundsException.class, () -> flat.view(5, 2));
        }
    }
}
