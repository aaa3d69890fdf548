package spin.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;

/** Forward + backward twice gives bit-identical gradients; activation recompute changes memory, not results. */
class ModelDeterminismTest {

    private static float[] gradients(boolean recompute, int threads, long seed) {
        Random rng = new Random(seed);
        try (CpuBackend cpu = new CpuBackend(threads); MistralModel model = TinyModels.random(cpu, seed)) {
            model.setActivationRecompute(recompute);
            int b = 3, t = 11, vocab = model.config().vocabSize();
            int[] ids = rng.ints(b * t, 0, vocab).toArray();
            int[] mask = new int[b * t], targets = new int[b * t];
            for (int i = 0; i < b * t; i++) {
                mask[i] = i % t == 0 || rng.nextInt(6) != 0 ? 1 : 0;
                targets[i] = i % t == t - 1 ? Backend.IGNORE_INDEX : ids[i + 1];
            }
            float[] dLogp = new float[b * t];
            for (int i = 0; i < dLogp.length; i++) {
                dLogp[i] = (float) rng.nextGaussian();
            }
            for (int pass = 0; pass < 2; pass++) {
                try (Tensor idT = cpu.fromHost(ids, b, t); Tensor m = cpu.fromHost(mask, b, t);
                        Tensor tg = cpu.fromHost(targets, b, t); Tensor d = cpu.fromHost(dLogp, b, t)) {
                    model.backward(model.forward(idT, m, tg), d);
                }
            }
            return cpu.read(model.gradients().flat());
        }
    }

    @Test
    void repeatedForwardBackwardIsBitIdentical() {
        long seed = System.nanoTime();
        float[] first = gradients(false, 2, seed);
        assertArrayEquals(first, gradients(false, 2, seed), "seed " + seed);
        double norm = 0;
        for (float g : first) {
            norm += g * g;
        }
        assertTrue(norm > 0, "gradients must not vanish");
    }

    @Test
    void activationRecomputeAndThreadCountDoNotChangeGradients() {
        long seed = System.nanoTime();
        float[] plain = gradients(false, 2, seed);
        assertArrayEquals(plain, gradients(true, 2, seed), "recompute, seed " + seed);
        assertArrayEquals(plain, gradients(true, 1, seed), "recompute on 1 thread, seed " + seed);
    }
}
