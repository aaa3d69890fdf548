package spin.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.FrozenWeights;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;

/** Incremental decoding over the paged KV cache gives the logits of the full forward on the same prefix. */
class KvCacheDecodeTest {

    /** Logits at the last position of a single-sequence full forward. */
    private static float[] fullForwardLastLogits(MistralModel model, int[] prefix) {
        Backend cpu = model.backend();
        int t = prefix.length, v = model.config().vocabSize();
        int[] mask = new int[t];
        Arrays.fill(mask, 1);
        int[] targets = new int[t];
        Arrays.fill(targets, Backend.IGNORE_INDEX);
        model.setLogProbChunkRows(0); // unfused, so the forward keeps its logits
        try (Tensor ids = cpu.fromHost(prefix, 1, t); Tensor m = cpu.fromHost(mask, 1, t);
                Tensor tg = cpu.fromHost(targets, 1, t); MistralModel.ForwardState s = model.forward(ids, m, tg)) {
            return Arrays.copyOfRange(cpu.read(s.logits()), (t - 1) * v, t * v);
        }
    }

    private static double relativeError(float[] a, float[] b) {
        double diff = 0, norm = 0;
        for (int i = 0; i < a.length; i++) {
            diff += (a[i] - b[i]) * (double) (a[i] - b[i]);
            norm += (double) b[i] * b[i];
        }
        return Math.sqrt(diff / norm);
    }

    @Test
    void raggedPrefillAndDecodeMatchTheFullForward() {
        long seed = System.nanoTime();
        Random rng = new Random(seed);
        try (CpuBackend cpu = new CpuBackend(2); MistralModel model = TinyModels.random(cpu, seed);
                KvCache cache = new KvCache(model.config(), cpu, 4, 64)) {
            int vocab = model.config().vocabSize();
            int[] promptLengths = {5, 9, 1};
            int[][] sequences = new int[3][];
            int[] ids = new int[3];
            for (int i = 0; i < 3; i++) {
                sequences[i] = rng.ints(promptLengths[i], 0, vocab).toArray();
                ids[i] = cache.open();
            }
            // Prefill all prompts as one ragged batch, then decode a token per sequence per step;
            // sequence 1 stops early to leave a changing batch.
            int[][] newTokens = sequences.clone();
            int[] active = ids.clone();
            for (int step = 0; step < 8; step++) {
                try (Tensor logits = model.extend(cache, active, newTokens)) {
                    float[] all = cpu.read(logits);
                    for (int i = 0; i < active.length; i++) {
                        int s = indexOf(ids, active[i]);
                        float[] cached = Arrays.copyOfRange(all, i * vocab, (i + 1) * vocab);
                        double err = relativeError(cached, fullForwardLastLogits(model, sequences[s]));
                        assertTrue(err < 1e-5, "step " + step + " sequence " + s + ": relative error " + err + " (seed " + seed + ")");
                        assertEquals(sequences[s].length, cache.length(active[i]));
                    }
                }
                if (step == 3) {
                    cache.release(ids[1]);
                    active = new int[] {ids[0], ids[2]};
                }
                newTokens = new int[active.length][];
                for (int i = 0; i < active.length; i++) {
                    int s = indexOf(ids, active[i]);
                    int token = rng.nextInt(vocab);
                    sequences[s] = append(sequences[s], token);
                    newTokens[i] = new int[] {token};
                }
            }
            assertTrue(sequences[0].length > model.config().slidingWindow(), "the window must be exercised");
        }
    }

    /**
     * Without a window, 80 cached keys span two of the attention's 64-key blocks and many cache
     * blocks; single-token steps come first and a longer step after them, so the model's reused
     * step buffers must grow between calls.
     */
    @Test
    void longSequencesAndGrowingStepsMatchTheFullForward() {
        long seed = System.nanoTime();
        Random rng = new Random(seed);
        MistralConfig c = TinyModels.config();
        MistralConfig noWindow = new MistralConfig(c.vocabSize(), c.hiddenSize(), c.intermediateSize(), c.numHiddenLayers(),
                c.numAttentionHeads(), c.numKeyValueHeads(), c.headDim(), c.maxPositionEmbeddings(), c.rmsNormEps(), c.ropeTheta(),
                0, false, c.initializerRange(), c.bosTokenId(), c.eosTokenId());
        try (CpuBackend cpu = new CpuBackend(2); MistralModel model = new MistralModel(noWindow, cpu);
                KvCache cache = new KvCache(noWindow, cpu, 16, 16)) {
            ModelCheckpoint.initialize(model, seed);
            int vocab = noWindow.vocabSize();
            int a = cache.open(), b = cache.open();
            int[] seqA = {rng.nextInt(vocab)}, seqB = {rng.nextInt(vocab)};
            model.extend(cache, new int[] {a, b}, new int[][] {seqA, seqB});
            int[] moreA = rng.ints(70, 0, vocab).toArray(), moreB = rng.ints(9, 0, vocab).toArray();
            seqA = concat(seqA, moreA);
            seqB = concat(seqB, moreB);
            float[] logits = cpu.read(model.extend(cache, new int[] {a, b}, new int[][] {moreA, moreB}));
            double errA = relativeError(Arrays.copyOfRange(logits, 0, vocab), fullForwardLastLogits(model, seqA));
            double errB = relativeError(Arrays.copyOfRange(logits, vocab, 2 * vocab), fullForwardLastLogits(model, seqB));
            assertTrue(errA < 1e-5 && errB < 1e-5, "relative errors " + errA + ", " + errB + " (seed " + seed + ")");
            for (int step = 0; step < 10; step++) {
                int token = rng.nextInt(vocab);
                seqA = concat(seqA, new int[] {token});
                float[] next = cpu.read(model.extend(cache, new int[] {a}, new int[][] {{token}}));
                double err = relativeError(next, fullForwardLastLogits(model, seqA));
                assertTrue(err < 1e-5, "step " + step + ": relative error " + err + " (seed " + seed + ")");
            }
            assertEquals(81, cache.length(a));
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    /**
     * With the weights frozen (as generation runs hold them), a sequence's logits have the same
     * bits whether it is extended alone or beside 15 others, in prefill (5 rows against 80) and in
     * decoding (1 row against 16): every matmul row is summed in the same order whatever the row
     * count. Without the freeze, steps of fewer than 12 rows sum in another order.
     */
    @Test
    void frozenWeightsMakeASequencesLogitsIndependentOfTheBatch() {
        long seed = System.nanoTime();
        Random rng = new Random(seed);
        try (CpuBackend cpu = new CpuBackend(2); MistralModel model = TinyModels.random(cpu, seed);
                KvCache cache = new KvCache(model.config(), cpu, 4, 128); FrozenWeights frozen = model.freezeWeights()) {
            int vocab = model.config().vocabSize();
            int[] prompt = rng.ints(5, 0, vocab).toArray();
            int next = rng.nextInt(vocab);
            float[][] prefill = new float[2][], decode = new float[2][];
            for (int run = 0; run < 2; run++) {
                int batch = run == 0 ? 1 : 16;
                int[] ids = new int[batch];
                int[][] tokens = new int[batch][];
                for (int i = 0; i < batch; i++) {
                    ids[i] = cache.open();
                    tokens[i] = i == 0 ? prompt : rng.ints(5, 0, vocab).toArray();
                }
                prefill[run] = Arrays.copyOf(cpu.read(model.extend(cache, ids, tokens)), vocab);
                for (int i = 0; i < batch; i++) {
                    tokens[i] = new int[] {i == 0 ? next : rng.nextInt(vocab)};
                }
                decode[run] = Arrays.copyOf(cpu.read(model.extend(cache, ids, tokens)), vocab);
                for (int id : ids) {
                    cache.release(id);
                }
            }
            assertArrayEquals(prefill[0], prefill[1], "prefill logits (seed " + seed + ")");
            assertArrayEquals(decode[0], decode[1], "decode logits (seed " + seed + ")");
        }
    }

    @Test
    void aFullCacheRefusesWithoutCorruptingSequences() {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = TinyModels.random(cpu, 7);
                KvCache cache = new KvCache(model.config(), cpu, 4, 2)) {
            int a = cache.open();
            model.extend(cache, new int[] {a}, new int[][] {{1, 2, 3, 4, 5}}).close();
            int b = cache.open();
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> model.extend(cache, new int[] {b}, new int[][] {{1, 2, 3, 4, 5}}));
            assertTrue(e.getMessage().contains("KV cache full"), e.getMessage());
            assertEquals(0, cache.length(b));
            assertEquals(5, cache.length(a));
            cache.release(a);
            assertEquals(2, cache.freeBlocks());
        }
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        throw new AssertionError(v);
    }

    private static int[] append(int[] a, int v) {
        int[] r = Arrays.copyOf(a, a.length + 1);
        r[a.length] = v;
        return r;
    }
}
