package spin.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.cpu.CpuBackend;
import spin.model.KvCache;
import spin.model.ModelCheckpoint;
import spin.model.MistralModel;
import spin.model.ParameterLayout;
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

    /** The device under test computing in {@code precision}, or an aborted (skipped) test saying why it cannot be opened so. */
    abstract Backend openDevice(Precision precision);

    private static List<GenerationRequest> requests(int count, int vocab) {
        Random rng = new Random(5);
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(new GenerationRequest(i, rng.ints(1 + rng.nextInt(15), 0, vocab).toArray()));
        }
        return out;
    }

    private static List<Generation> generate(Backend backend, SamplingParams sampling) {
        try (MistralModel model = TinyModels.random(backend, 11)) {
            return generate(model, sampling);
        }
    }

    private static List<Generation> generate(MistralModel model, SamplingParams sampling) {
        try (KvCache cache = new KvCache(model.config(), model.backend(), BLOCK, 128)) {
            return new BatchGenerator(model, cache, 3, 8, sampling, StopCriteria.length(10))
                    .generate(requests(5, model.config().vocabSize()), new GenerationListener() {});
        }
    }

    /**
     * A checkpoint loaded for inference (ModelCheckpoint.loadForInference, what generate, score and
     * chat use) into a BF16 device gives the same tokens as the ordinary load, from fp32 and from
     * bf16 files alike (the weights rounded on upload as the master's cast rounds them), takes at
     * least 4 bytes per parameter less device memory, and refuses the master it does not hold.
     */
    @Test
    void aModelLoadedForInferenceSkipsTheMasterAndKeepsTheTokens(@TempDir Path dir) throws IOException {
        try (Backend device = openDevice(Precision.BF16); CpuBackend cpu = new CpuBackend(2);
                MistralModel written = TinyModels.random(cpu, 11)) {
            SamplingParams sampling = new SamplingParams(0.8, 0.9, 20, 1.0, 77);
            long master = 4L * new ParameterLayout(written.config()).totalSize();
            for (ModelCheckpoint.StorageType storage : ModelCheckpoint.StorageType.values()) {
                Path files = dir.resolve(storage.name());
                ModelCheckpoint.save(written, files, storage, ModelCheckpoint.DEFAULT_SHARD_BYTES);
                List<Generation> expected;
                long ordinary, inference;
                device.synchronize();
                long empty = device.memoryUsage().orElseThrow().currentBytes();
                try (MistralModel model = ModelCheckpoint.load(files, device)) {
                    device.synchronize();
                    ordinary = device.memoryUsage().orElseThrow().currentBytes() - empty;
                    expected = generate(model, sampling);
                }
                try (MistralModel model = ModelCheckpoint.loadForInference(files, device)) {
                    device.synchronize();
                    inference = device.memoryUsage().orElseThrow().currentBytes() - empty;
                    List<Generation> actual = generate(model, sampling);
                    for (int i = 0; i < expected.size(); i++) {
                        assertArrayEquals(expected.get(i).tokens(), actual.get(i).tokens(), storage + " request " + i);
                    }
                    IllegalStateException e = assertThrows(IllegalStateException.class, model::masterWeights);
                    assertTrue(e.getMessage().contains("loaded for inference"), e.getMessage());
                    assertThrows(IllegalStateException.class, model::gradients);
                }
                assertTrue(ordinary - inference >= master, storage + ": the inference load took " + inference
                        + " bytes, the ordinary one " + ordinary + "; the master alone is " + master);
            }
        }
    }

    @Test
    void greedyAndSeededSamplingGiveTheCpuBackendsTokens() {
        try (Backend device = openDevice(Precision.FP32); CpuBackend cpu = new CpuBackend(2)) {
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

    /**
     * Greedy decoding in BF16 follows the fp32 CPU model: at every step of every request the token
     * the device chose is the CPU's argmax given the device's own prefix, or (where bf16 rounding
     * flips a near tie) a token whose CPU logit is within the bf16 noise of the CPU's largest: 2^-6
     * of the row's largest magnitude, four bf16 half-ulps, since the logits pass through every
     * layer's rounded activations. The test reports how many steps were such flips.
     */
    @Test
    void greedyDecodingInBf16ChoosesTheCpusArgmaxUpToRounding() {
        try (Backend device = openDevice(Precision.BF16); CpuBackend cpu = new CpuBackend(2);
                MistralModel reference = TinyModels.random(cpu, 11)) {
            List<Generation> generated = generate(device, SamplingParams.greedy());
            List<GenerationRequest> asked = requests(5, reference.config().vocabSize());
            int vocab = reference.config().vocabSize(), steps = 0, flips = 0;
            try (KvCache cache = new KvCache(reference.config(), cpu, BLOCK, 128)) {
                for (int r = 0; r < asked.size(); r++) {
                    int id = cache.open();
                    int[] next = asked.get(r).prompt();
                    for (int token : generated.get(r).tokens()) {
                        float[] logits = cpu.read(reference.extend(cache, new int[] {id}, new int[][] {next}));
                        int best = 0;
                        float largest = 0;
                        for (int v = 0; v < vocab; v++) {
                            best = logits[v] > logits[best] ? v : best;
                            largest = Math.max(largest, Math.abs(logits[v]));
                        }
                        float noise = largest / 64;
                        assertTrue(logits[best] - logits[token] <= noise, "request " + r + " step " + steps + ": " + device.name()
                                + " chose " + token + " (CPU logit " + logits[token] + ") where the CPU's argmax " + best
                                + " has " + logits[best] + ", more than the bf16 noise " + noise + " apart");
                        flips += token == best ? 0 : 1;
                        steps++;
                        next = new int[] {token};
                    }
                    cache.release(id);
                }
            }
            assertTrue(steps == 50, "five requests of ten tokens");
            System.err.printf("[bf16 greedy on %s] %d of %d steps chose a near-tied token other than the CPU's argmax%n",
                    device.name(), flips, steps);
        }
    }
}
