package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;

/**
 * The fused lm_head + log-prob (logits in chunks of rows, recomputed in the backward) against the
 * unfused path on a tiny random model: the same token log-probs, log-sum-exps, per-row logit sums
 * and parameter gradients within fp32 rounding, for chunks that do not divide the rows, that are
 * one row, every row or more, and with ignored targets.
 */
class FusedLogProbTest {
    private static final int B = 3, T = 10, N = B * T;
    /** Per element, relative to the largest magnitude of the unfused tensor: fp32 rounding of reordered sums. */
    private static final double TOLERANCE = 1e-5;

    /** What one forward + backward gives: token log-probs, lse, logit row sums, unfused logits (or null), gradients. */
    private record Pass(float[] tokenLogps, float[] vocabLse, float[] logitRowSums, float[] logits, float[] gradients) {}

    private static Pass pass(CpuBackend cpu, int logProbChunkRows) {
        Random rng = new Random(11);
        int vocab = TinyModels.config().vocabSize();
        int[] ids = rng.ints(N, 0, vocab).toArray();
        int[] mask = new int[N], targets = new int[N];
        float[] dLogp = new float[N];
        for (int i = 0; i < N; i++) {
            mask[i] = rng.nextInt(6) != 0 ? 1 : 0;
            targets[i] = i % T == T - 1 || rng.nextInt(4) == 0 ? Backend.IGNORE_INDEX : ids[i + 1];
            dLogp[i] = (float) rng.nextGaussian();
        }
        try (MistralModel model = TinyModels.random(cpu, 5); Tensor idT = cpu.fromHost(ids, B, T);
                Tensor maskT = cpu.fromHost(mask, B, T); Tensor targetT = cpu.fromHost(targets, B, T);
                Tensor d = cpu.fromHost(dLogp, B, T)) {
            model.setLogProbChunkRows(logProbChunkRows);
            MistralModel.ForwardState s = model.forward(idT, maskT, targetT);
            float[] logits = logProbChunkRows == 0 ? cpu.read(s.logits()) : null;
            Pass forward = new Pass(cpu.read(s.tokenLogps()), cpu.read(s.vocabLse), cpu.read(s.logitRowSums()), logits, null);
            model.backward(s, d);
            for (int i = 0; i < N; i++) {
                if (targets[i] == Backend.IGNORE_INDEX) {
                    assertEquals(0f, forward.tokenLogps()[i], "an ignored target scores 0");
                }
            }
            return new Pass(forward.tokenLogps(), forward.vocabLse(), forward.logitRowSums(), logits,
                    cpu.read(model.gradients().flat()));
        }
    }

    private static void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what);
        double largest = 0;
        for (float e : expected) {
            largest = Math.max(largest, Math.abs(e));
        }
        double allowed = TOLERANCE * Math.max(1, largest);
        for (int i = 0; i < expected.length; i++) {
            double diff = Math.abs(expected[i] - actual[i]);
            assertTrue(diff <= allowed, what + "[" + i + "]: " + actual[i] + " vs " + expected[i] + " (allowed " + allowed + ")");
        }
    }

    @Test
    void fusedChunksGiveTheUnfusedLogProbsAndGradients() {
        try (CpuBackend cpu = new CpuBackend(2)) {
            Pass unfused = pass(cpu, 0);
            int vocab = TinyModels.config().vocabSize();
            float[] rowSums = new float[N];
            for (int row = 0; row < N; row++) {
                double sum = 0;
                for (int k = 0; k < vocab; k++) {
                    sum += unfused.logits()[row * vocab + k];
                }
                rowSums[row] = (float) sum;
            }
            assertClose("unfused logit row sums", rowSums, unfused.logitRowSums());
            for (int chunk : new int[] {1, 7, N - 1, N, N + 5, MistralModel.defaultLogProbChunkRows(TinyModels.config())}) {
                Pass fused = pass(cpu, chunk);
                String where = "chunk of " + chunk + " rows: ";
                assertClose(where + "token log-probs", unfused.tokenLogps(), fused.tokenLogps());
                assertClose(where + "lse", unfused.vocabLse(), fused.vocabLse());
                assertClose(where + "logit row sums", rowSums, fused.logitRowSums());
                // gradients slot by slot, so that each is held to its own magnitude
                ParameterLayout layout = new ParameterLayout(TinyModels.config());
                for (ParameterLayout.Slot slot : layout.slots()) {
                    int from = Math.toIntExact(slot.offset()), to = Math.toIntExact(slot.offset() + slot.size());
                    assertClose(where + "gradient of " + slot.name(), java.util.Arrays.copyOfRange(unfused.gradients(), from, to),
                            java.util.Arrays.copyOfRange(fused.gradients(), from, to));
                }
            }
        }
    }

    @Test
    void aFusedForwardKeepsNoLogits() {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = TinyModels.random(cpu, 5);
                Tensor ids = cpu.fromHost(new int[] {1, 2, 3, 4}, 1, 4); Tensor mask = cpu.fromHost(new int[] {1, 1, 1, 1}, 1, 4);
                Tensor targets = cpu.fromHost(new int[] {2, 3, 4, Backend.IGNORE_INDEX}, 1, 4);
                MistralModel.ForwardState s = model.forward(ids, mask, targets)) {
            assertTrue(model.logProbChunkRows() > 0, "a model starts fused");
            IllegalStateException e = assertThrows(IllegalStateException.class, s::logits);
            assertTrue(e.getMessage().contains("setLogProbChunkRows(0)"), e.getMessage());
        }
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = TinyModels.random(cpu, 5)) {
            assertThrows(IllegalArgumentException.class, () -> model.setLogProbChunkRows(-1));
        }
    }
}
