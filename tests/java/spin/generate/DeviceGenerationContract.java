package spin.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.cpu.CpuBackend;
import spin.model.KvCache;
import spin.model.MistralModel;
import spin.model.TinyModels;

/**
 * Generation on a device against the CPU backend: a batch of greedy generations on the tiny random
 * model (GQA, a sliding window the sequences outgrow, chunked prefill beside decoding) gives the
 * same tokens on both, and seeded sampling (per-record counter-based RNG) does too. Both compute in
 * fp32 and differ only in summation order; a flipped argmax would need two logits within ~1e-6,
 * which these seeds do not produce, and the test names the request and step if one ever does.
 */
abstract class DeviceGenerationContract {
    private static final int BLOCK = 4;

    /** The device under test, or an aborted (skipped) test saying why it cannot be opened. */
    abstract Backend openDevice();

    private static List<GenerationRequest> requests(int count, int vocab) {
        Random rng = new Random(5);
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(new GenerationRequest(i, rng.ints(1 + rng.nextInt(15), 0, vocab).toArray()));
        }
        return out;
    }

    private static List<Generation> generate(Backend backend, SamplingParams sampling) {
        try (MistralModel model = TinyModels.random(backend, 11);
                KvCache cache = new KvCache(model.config(), backend, BLOCK, 128)) {
            return new BatchGenerator(model, cache, 3, 8, sampling, StopCriteria.length(10))
                    .generate(requests(5, model.config().vocabSize()), new GenerationListener() {});
        }
    }

    @Test
    void greedyAndSeededSamplingGiveTheCpuBackendsTokens() {
        try (Backend device = openDevice(); CpuBackend cpu = new CpuBackend(2)) {
            for (SamplingParams sampling : new SamplingParams[] {SamplingParams.greedy(),
                    new SamplingParams(0.8, 0.9, 20, 1.0, 1234)}) {
                List<Generation> expected = generate(cpu, sampling), actual = generate(device, sampling);
                assertEquals(expected.size(), actual.size());
                for (int i = 0; i < expected.size(); i++) {
                    assertArrayEquals(expected.get(i).tokens(), actual.get(i).tokens(),
                            "request " + i + " (" + sampling + ") on " + device.name());
                    assertEquals(expected.get(i).finish(), actual.get(i).finish());
                }
                assertTrue(expected.stream().allMatch(g -> g.tokens().length == 10));
            }
        }
    }
}
