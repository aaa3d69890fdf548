package spin.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;

/**
 * The model reuses its training buffers between passes without zeroing them: a pass must give the
 * same bits after other passes of other shapes (stale values never leak in), and two live forward
 * states must not share memory.
 */
class WorkspaceReuseTest {
    private record Batch(int b, int t, int[] ids, int[] mask, int[] targets, float[] dLogp) {}

    /** Random ids, a key mask with holes (and a fully masked first key in row 0) and next-token targets. */
    private static Batch batch(Random rng, int b, int t, int vocab) {
        int[] ids = rng.ints(b * t, 0, vocab).toArray();
        int[] mask = new int[b * t], targets = new int[b * t];
        for (int i = 0; i < b * t; i++) {
            mask[i] = i == 0 ? 0 : rng.nextInt(5) != 0 ? 1 : 0;
            targets[i] = i % t == t - 1 || rng.nextInt(7) == 0 ? Backend.IGNORE_INDEX : ids[i + 1];
        }
        float[] d = new float[b * t];
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) rng.nextGaussian();
        }
        return new Batch(b, t, ids, mask, targets, d);
    }

    /** Token log-probs of one forward + backward, then the accumulated gradients; gradients are zeroed after. */
    private static float[][] pass(CpuBackend cpu, MistralModel model, Batch x) {
        try (Tensor ids = cpu.fromHost(x.ids(), x.b(), x.t()); Tensor mask = cpu.fromHost(x.mask(), x.b(), x.t());
                Tensor targets = cpu.fromHost(x.targets(), x.b(), x.t()); Tensor d = cpu.fromHost(x.dLogp(), x.b(), x.t())) {
            MistralModel.ForwardState s = model.forward(ids, mask, targets);
            float[] logps = cpu.read(s.tokenLogps());
            model.backward(s, d);
            float[] grads = cpu.read(model.gradients().flat());
            cpu.fill(model.gradients().flat(), 0f);
            return new float[][] {logps, grads};
        }
    }

    @Test
    void aPassGivesTheSameBitsAfterPassesOfOtherShapes() {
        for (boolean recompute : new boolean[] {false, true}) {
            Random rng = new Random(7);
            try (CpuBackend cpu = new CpuBackend(2); MistralModel fresh = TinyModels.random(cpu, 3);
                    MistralModel reused = TinyModels.random(cpu, 3)) {
                fresh.setActivationRecompute(recompute);
                reused.setActivationRecompute(recompute);
                int vocab = fresh.config().vocabSize();
                Batch large = batch(rng, 4, 17, vocab), small = batch(rng, 3, 9, vocab), odd = batch(rng, 2, 13, vocab);
                float[][] expected = pass(cpu, fresh, small);
                pass(cpu, reused, large);
                pass(cpu, reused, odd);
                float[][] actual = pass(cpu, reused, small);
                assertArrayEquals(expected[0], actual[0], "token log-probs, recompute " + recompute);
                assertArrayEquals(expected[1], actual[1], "gradients, recompute " + recompute);
            }
        }
    }

    @Test
    void twoLiveForwardStatesDoNotShareMemory() {
        Random rng = new Random(11);
        try (CpuBackend cpu = new CpuBackend(2); MistralModel model = TinyModels.random(cpu, 5)) {
            int vocab = model.config().vocabSize();
            Batch a = batch(rng, 2, 10, vocab), b = batch(rng, 2, 10, vocab);
            float[] alone;
            try (Tensor ids = cpu.fromHost(a.ids(), 2, 10); Tensor mask = cpu.fromHost(a.mask(), 2, 10);
                    Tensor targets = cpu.fromHost(a.targets(), 2, 10);
                    MistralModel.ForwardState s = model.forward(ids, mask, targets)) {
                alone = cpu.read(s.tokenLogps());
            }
            try (Tensor ids = cpu.fromHost(a.ids(), 2, 10); Tensor mask = cpu.fromHost(a.mask(), 2, 10);
                    Tensor targets = cpu.fromHost(a.targets(), 2, 10); Tensor idsB = cpu.fromHost(b.ids(), 2, 10);
                    Tensor maskB = cpu.fromHost(b.mask(), 2, 10); Tensor targetsB = cpu.fromHost(b.targets(), 2, 10);
                    MistralModel.ForwardState first = model.forward(ids, mask, targets);
                    MistralModel.ForwardState second = model.forward(idsB, maskB, targetsB)) {
                assertArrayEquals(alone, cpu.read(first.tokenLogps()), "the second forward overwrote the first one's buffers");
            }
        }
    }
}
