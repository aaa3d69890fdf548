package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import spin.backend.DType;
import spin.backend.Tensor;

/** Same inputs give bit-identical outputs: run to run, and across thread counts. */
class DeterminismTest {

    /** A small layer's worth of forward and backward ops; returns every output concatenated. */
    private static float[] run(int threads, long seed) {
        Random rng = new Random(seed);
        int b = 2, t = 70, h = 4, kvh = 2, d = 16, c = h * d, f = 96, vocab = 50;
        try (CpuBackend cpu = new CpuBackend(threads);
                Tensor x = cpu.fromHost(Check.gaussian(rng, b * t * c, 1), b * t, c);
                Tensor wq = cpu.fromHost(Check.gaussian(rng, c * c, 0.1), c, c);
                Tensor wk = cpu.fromHost(Check.gaussian(rng, kvh * d * c, 0.1), kvh * d, c);
                Tensor wv = cpu.fromHost(Check.gaussian(rng, kvh * d * c, 0.1), kvh * d, c);
                Tensor wGate = cpu.fromHost(Check.gaussian(rng, f * c, 0.1), f, c);
                Tensor wVocab = cpu.fromHost(Check.gaussian(rng, vocab * c, 0.1), vocab, c);
                Tensor normW = cpu.fromHost(Check.gaussian(rng, c, 1), c);
                Tensor mask = cpu.fromHost(randomMask(rng, b * t), b, t);
                Tensor pos = cpu.fromHost(positions(b, t), b, t);
                Tensor labels = cpu.fromHost(randomLabels(rng, b * t, vocab), b * t)) {
            Tensor normed = cpu.allocate(DType.F32, b * t, c), rstd = cpu.allocate(DType.F32, b * t);
            cpu.rmsnormForward(normed, rstd, x, normW, 1e-5f);
            Tensor q = cpu.allocate(DType.F32, b, t, h, d), k = cpu.allocate(DType.F32, b, t, kvh, d),
                    v = cpu.allocate(DType.F32, b, t, kvh, d);
            cpu.matmulForward(q.reshape(b * t, c), normed, wq);
            cpu.matmulForward(k.reshape(b * t, kvh * d), normed, wk);
            cpu.matmulForward(v.reshape(b * t, kvh * d), normed, wv);
            cpu.ropeForward(q, q, pos, 10000f);
            cpu.ropeForward(k, k, pos, 10000f);
            Tensor att = cpu.allocate(DType.F32, b, t, h, d), lse = cpu.allocate(DType.F32, b, h, t);
            cpu.attentionForward(att, lse, q, k, v, mask, 24);
            Tensor gate = cpu.allocate(DType.F32, b * t, f), act = cpu.allocate(DType.F32, b * t, f);
            cpu.matmulForward(gate, att.reshape(b * t, c), wGate);
            cpu.swigluForward(act, gate, gate);
            Tensor logits = cpu.allocate(DType.F32, b * t, vocab);
            cpu.matmulForward(logits, att.reshape(b * t, c), wVocab);
            Tensor logp = cpu.allocate(DType.F32, b * t), lseV = cpu.allocate(DType.F32, b * t);
            cpu.logprobForward(logp, lseV, logits, labels);

            Tensor dLogp = cpu.fromHost(Check.gaussian(rng, b * t, 1), b * t);
            Tensor dLogits = cpu.allocate(DType.F32, b * t, vocab);
            cpu.logprobBackward(dLogits, dLogp, logits, labels, lseV);
            Tensor dAtt = cpu.allocate(DType.F32, b, t, h, d), dVocab = cpu.allocate(DType.F32, vocab, c);
            cpu.matmulBackward(dAtt.reshape(b * t, c), dVocab, dLogits, att.reshape(b * t, c), wVocab);
            Tensor dq = cpu.allocate(DType.F32, b, t, h, d), dk = cpu.allocate(DType.F32, b, t, kvh, d),
                    dv = cpu.allocate(DType.F32, b, t, kvh, d);
            cpu.attentionBackward(dq, dk, dv, dAtt, q, k, v, mask, att, lse, 24);
            Tensor dNormW = cpu.allocate(DType.F32, c), dx = cpu.allocate(DType.F32, b * t, c);
            cpu.rmsnormBackward(dx, dNormW, dq.reshape(b * t, c), x, normW, rstd);
            double norm = cpu.globalNorm(java.util.List.of(dVocab, dNormW, dx));
            return concat(cpu.read(logp), cpu.read(dq), cpu.read(dk), cpu.read(dv), cpu.read(dVocab), cpu.read(dx),
                    cpu.read(dNormW), cpu.read(act), new float[] {(float) norm});
        }
    }

    private static int[] randomMask(Random rng, int n) {
        int[] m = new int[n];
        for (int i = 0; i < n; i++) {
            m[i] = rng.nextInt(8) == 0 ? 0 : 1;
        }
        return m;
    }

    private static int[] positions(int b, int t) {
        int[] p = new int[b * t];
        for (int i = 0; i < p.length; i++) {
            p[i] = i % t;
        }
        return p;
    }

    private static int[] randomLabels(Random rng, int n, int vocab) {
        int[] l = new int[n];
        for (int i = 0; i < n; i++) {
            l[i] = rng.nextInt(5) == 0 ? spin.backend.Backend.IGNORE_INDEX : rng.nextInt(vocab);
        }
        return l;
    }

    private static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] p : parts) {
            n += p.length;
        }
        float[] out = new float[n];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    @Test
    void repeatedRunsAreBitIdentical() {
        long seed = Check.freshSeed();
        assertArrayEquals(run(2, seed), run(2, seed), "seed " + seed);
    }

    @Test
    void resultsDoNotDependOnTheThreadCount() {
        long seed = Check.freshSeed();
        float[] one = run(1, seed);
        assertArrayEquals(one, run(2, seed), "1 vs 2 threads, seed " + seed);
        assertArrayEquals(one, run(3, seed), "1 vs 3 threads, seed " + seed);
    }
}
