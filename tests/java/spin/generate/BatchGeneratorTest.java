package spin.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.model.KvCache;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.TinyModels;

/**
 * The continuous-batching generator on a tiny random model (GQA, a sliding window of 6 that the
 * sequences outgrow): batched greedy output equals one-at-a-time output and the full forward's
 * argmax at every step, stops and admission under a small KV budget keep those results, and
 * sampling is reproducible from the seed whatever the batch.
 */
class BatchGeneratorTest {
    private static final int BLOCK = 4;
    private static CpuBackend cpu;
    private static MistralModel model;

    @BeforeAll
    static void setUp() {
        cpu = new CpuBackend(2);
        model = TinyModels.random(cpu, 11);
    }

    @AfterAll
    static void tearDown() {
        model.close();
        cpu.close();
    }

    /** Prompts of 1 to 19 tokens, so admission, prefill chunks and the window all vary. */
    private static List<GenerationRequest> requests(int count, long seed) {
        Random rng = new Random(seed);
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int length = 1 + rng.nextInt(19);
            out.add(new GenerationRequest(100 + i, rng.ints(length, 0, model.config().vocabSize()).toArray()));
        }
        return out;
    }

    private record Run(List<Generation> generations, List<GenerationListener.StepReport> steps) {}

    private static Run run(List<GenerationRequest> requests, int batch, int stepTokens, int cacheBlocks, SamplingParams sampling,
            StopCriteria stop) {
        List<GenerationListener.StepReport> steps = new ArrayList<>();
        try (KvCache cache = new KvCache(model.config(), cpu, BLOCK, cacheBlocks)) {
            List<Generation> out = new BatchGenerator(model, cache, batch, stepTokens, sampling, stop)
                    .generate(requests, new GenerationListener() {
                        @Override
                        public void stepDone(StepReport step) {
                            steps.add(step);
                        }
                    });
            assertEquals(cacheBlocks, cache.freeBlocks(), "every block must come back to the cache");
            return new Run(out, steps);
        }
    }

    /** One request at a time through a batch of one: the reference the batched runs must equal. */
    private static List<Generation> oneAtATime(List<GenerationRequest> requests, SamplingParams sampling, StopCriteria stop) {
        List<Generation> out = new ArrayList<>();
        for (GenerationRequest r : requests) {
            out.addAll(run(List.of(r), 1, 1024, 256, sampling, stop).generations());
        }
        return out;
    }

    private static void assertSameGenerations(List<Generation> expected, List<Generation> actual) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i).key(), actual.get(i).key(), "results must come in request order");
            assertArrayEquals(expected.get(i).tokens(), actual.get(i).tokens(), "request " + expected.get(i).key());
            assertEquals(expected.get(i).finish(), actual.get(i).finish(), "request " + expected.get(i).key());
        }
    }

    @Test
    void greedyBatchedEqualsOneAtATimeAndTheFullForwardArgmax() {
        List<GenerationRequest> requests = requests(9, 1);
        StopCriteria length = StopCriteria.length(14);
        List<Generation> alone = oneAtATime(requests, SamplingParams.greedy(), length);
        // Batch 4 with 8 tokens per step: prompts are prefilled in chunks beside decoding sequences.
        Run batched = run(requests, 4, 8, 256, SamplingParams.greedy(), length);
        assertSameGenerations(alone, batched.generations());
        assertTrue(batched.steps().stream().anyMatch(s -> s.promptTokens() > 0 && s.decodeTokens() > 0),
                "some step must mix prefill and decoding");
        for (int i = 0; i < requests.size(); i++) {
            assertEquals(14, alone.get(i).tokens().length);
            assertEquals(FinishReason.LENGTH, alone.get(i).finish());
            assertGreedyAgainstFullForward(requests.get(i).prompt(), alone.get(i).tokens());
        }
    }

    /**
     * Each generated token is the argmax of the full (uncached) forward over the prompt and the
     * tokens before it. Summation order may differ between the paths, so a token within 1e-4 of
     * the maximum logit (a tie at float precision) also passes.
     */
    private static void assertGreedyAgainstFullForward(int[] prompt, int[] generated) {
        int[] all = new int[prompt.length + generated.length - 1];
        System.arraycopy(prompt, 0, all, 0, prompt.length);
        System.arraycopy(generated, 0, all, prompt.length, generated.length - 1);
        int t = all.length, v = model.config().vocabSize();
        int[] mask = new int[t], targets = new int[t];
        Arrays.fill(mask, 1);
        Arrays.fill(targets, Backend.IGNORE_INDEX);
        model.setLogProbChunkRows(0); // unfused, so the forward keeps its logits
        try (Tensor ids = cpu.fromHost(all, 1, t); Tensor m = cpu.fromHost(mask, 1, t); Tensor tg = cpu.fromHost(targets, 1, t);
                MistralModel.ForwardState s = model.forward(ids, m, tg)) {
            float[] logits = cpu.read(s.logits());
            for (int j = 0; j < generated.length; j++) {
                int row = (prompt.length - 1 + j) * v;
                float max = Float.NEGATIVE_INFINITY;
                for (int k = 0; k < v; k++) {
                    max = Math.max(max, logits[row + k]);
                }
                float chosen = logits[row + generated[j]];
                assertTrue(chosen >= max - 1e-4f, "step " + j + ": token " + generated[j] + " has logit " + chosen
                        + " but the full forward's maximum is " + max);
            }
        }
    }

    /**
     * Runs with 14 sequences use the weights the CPU backend packs once per run; after the weights
     * change in place between two runs of the same model, the second run answers exactly as a fresh
     * model with the new weights does: nothing packed for the first run survives it.
     */
    @Test
    void aModelChangedBetweenRunsGeneratesAsTheChangedModel() {
        List<GenerationRequest> requests = requests(14, 5);
        StopCriteria length = StopCriteria.length(6);
        try (MistralModel changing = TinyModels.random(cpu, 21); MistralModel fresh = TinyModels.random(cpu, 22)) {
            List<Generation> first = runOn(changing, requests, length);
            ModelCheckpoint.initialize(changing, 22);
            List<Generation> second = runOn(changing, requests, length);
            List<Generation> expected = runOn(fresh, requests, length);
            assertSameGenerations(expected, second);
            assertFalse(Arrays.equals(first.get(0).tokens(), expected.get(0).tokens())
                    && Arrays.equals(first.get(1).tokens(), expected.get(1).tokens()), "the new weights must answer differently");
        }
    }

    /** A greedy run of all requests in one batch on {@code m}, checking that its steps used packed weights. */
    private static List<Generation> runOn(MistralModel m, List<GenerationRequest> requests, StopCriteria stop) {
        List<Long> packedBytes = new ArrayList<>();
        try (KvCache cache = new KvCache(m.config(), cpu, BLOCK, 256)) {
            List<Generation> out = new BatchGenerator(m, cache, requests.size(), 1024, SamplingParams.greedy(), stop)
                    .generate(requests, new GenerationListener() {
                        @Override
                        public void stepDone(StepReport step) {
                            packedBytes.add(cpu.packedWeightBytes());
                        }
                    });
            assertTrue(packedBytes.stream().allMatch(b -> b > 0), "every step of 14+ rows packs the weights: " + packedBytes);
            assertEquals(0, cpu.packedWeightBytes(), "the run drops its packed weights");
            return out;
        }
    }

    @Test
    void stopTokensEndSequencesEarlyAndWaitingPromptsTakeTheirPlace() {
        List<GenerationRequest> requests = requests(8, 2);
        List<Generation> free = oneAtATime(requests, SamplingParams.greedy(), StopCriteria.length(12));
        // Stop at tokens some answers really produce, so some sequences leave early.
        Set<Integer> stopIds = Set.of(free.get(0).tokens()[3], free.get(5).tokens()[1]);
        StopCriteria stop = new StopCriteria(12, stopIds, List.of(), null);
        Run batched = run(requests, 3, 64, 256, SamplingParams.greedy(), stop);
        int early = 0;
        for (int i = 0; i < requests.size(); i++) {
            int[] all = free.get(i).tokens();
            int end = 0;
            while (end < all.length && !stopIds.contains(all[end])) {
                end++;
            }
            Generation g = batched.generations().get(i);
            boolean stopped = end < all.length;
            assertArrayEquals(Arrays.copyOf(all, stopped ? end + 1 : all.length), g.tokens(), "request " + i);
            assertEquals(stopped ? FinishReason.STOP_TOKEN : FinishReason.LENGTH, g.finish(), "request " + i);
            early += stopped ? 1 : 0;
        }
        assertTrue(early >= 2, "the test needs sequences that stop early");
        assertTrue(batched.steps().stream().allMatch(s -> s.running() <= 3), "never more than the batch size");
    }

    @Test
    void aSmallKvBudgetMakesAdmissionWaitWithoutChangingResults() {
        List<GenerationRequest> requests = requests(7, 3);
        StopCriteria length = StopCriteria.length(10);
        List<Generation> roomy = run(requests, 7, 1024, 256, SamplingParams.greedy(), length).generations();
        // The largest worst case is 19 + 9 = 28 tokens = 7 blocks: 10 blocks hold one such
        // sequence and one short one, never seven.
        Run tight = run(requests, 7, 1024, 10, SamplingParams.greedy(), length);
        assertSameGenerations(roomy, tight.generations());
        int widest = tight.steps().stream().mapToInt(GenerationListener.StepReport::running).max().orElseThrow();
        assertTrue(widest < 7 && widest >= 1, "admission must have waited: widest batch " + widest);
        assertTrue(tight.steps().stream().anyMatch(s -> s.waiting() > 0 && s.running() < 7));
    }

    @Test
    void samplingIsReproducibleAndIndependentOfTheBatch() {
        List<GenerationRequest> requests = requests(6, 4);
        SamplingParams sampling = new SamplingParams(1.0, 0.95, 40, 1.1, 1234);
        StopCriteria length = StopCriteria.length(12);
        List<Generation> first = run(requests, 4, 16, 256, sampling, length).generations();
        assertSameGenerations(first, run(requests, 4, 16, 256, sampling, length).generations());
        assertSameGenerations(first, oneAtATime(requests, sampling, length));
        List<Generation> reseeded = run(requests, 4, 16, 256, new SamplingParams(1.0, 0.95, 40, 1.1, 1235), length).generations();
        assertFalse(Arrays.equals(first.get(0).tokens(), reseeded.get(0).tokens())
                && Arrays.equals(first.get(1).tokens(), reseeded.get(1).tokens()), "another seed must sample other tokens");
        List<Generation> greedy = run(requests, 4, 16, 256, SamplingParams.greedy(), length).generations();
        assertFalse(Arrays.equals(first.get(0).tokens(), greedy.get(0).tokens()), "sampling must differ from greedy");
    }

    @Test
    void stopStringsEndTheAnswerAndCutItsText() {
        TokenDecoder letters = tokens -> {
            StringBuilder s = new StringBuilder();
            for (int t : tokens) {
                s.append('<').append(t).append('>');
            }
            return s.toString();
        };
        List<GenerationRequest> requests = requests(3, 5);
        List<Generation> free = oneAtATime(requests, SamplingParams.greedy(), StopCriteria.length(8));
        String stopString = "<" + free.get(1).tokens()[2] + ">";
        StopCriteria stop = new StopCriteria(8, List.of(), List.of(stopString), letters);
        Generation g = run(requests, 3, 64, 256, SamplingParams.greedy(), stop).generations().get(1);
        int first = 0;
        while (free.get(1).tokens()[first] != free.get(1).tokens()[2]) {
            first++;
        }
        assertEquals(FinishReason.STOP_STRING, g.finish());
        assertArrayEquals(Arrays.copyOf(free.get(1).tokens(), first + 1), g.tokens());
        assertEquals(letters.decode(Arrays.copyOf(g.tokens(), first)), stop.cut(letters.decode(g.tokens())));
    }

    @Test
    void requestsThatCouldNeverRunAreRefusedBeforeAnyStep() {
        List<GenerationListener.StepReport> steps = new ArrayList<>();
        GenerationListener listener = new GenerationListener() {
            @Override
            public void stepDone(StepReport step) {
                steps.add(step);
            }
        };
        try (KvCache cache = new KvCache(model.config(), cpu, BLOCK, 4)) {
            BatchGenerator generator = new BatchGenerator(model, cache, 2, 64, SamplingParams.greedy(), StopCriteria.length(8));
            List<GenerationRequest> tooLong = List.of(new GenerationRequest(0, new int[] {1, 2}),
                    new GenerationRequest(7, new int[12]));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> generator.generate(tooLong, listener));
            assertTrue(e.getMessage().startsWith("request 7: a prompt of 12 tokens and 8 new tokens need 5 KV-cache blocks"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> generator.generate(List.of(new GenerationRequest(3, new int[] {5, 97})), listener));
            assertTrue(e.getMessage().contains("token id 97 is outside the model's vocabulary"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> generator.generate(List.of(new GenerationRequest(4, new int[0])), listener));
            assertTrue(e.getMessage().contains("no tokens"), e.getMessage());
            assertTrue(steps.isEmpty(), "nothing may run before a refusal");
            assertEquals(4, cache.freeBlocks());
        }
        try (KvCache cache = new KvCache(model.config(), cpu, BLOCK, 128)) {
            BatchGenerator generator = new BatchGenerator(model, cache, 2, 64, SamplingParams.greedy(), StopCriteria.length(250));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> generator.generate(List.of(new GenerationRequest(1, new int[10])), listener));
            assertTrue(e.getMessage().contains("max_position_embeddings (256)"), e.getMessage());
        }
    }

    @Test
    void theFullBatchCacheSizeCoversTheLargestWorstCases() {
        List<GenerationRequest> requests = List.of(new GenerationRequest(0, new int[3]), new GenerationRequest(1, new int[9]),
                new GenerationRequest(2, new int[1]));
        // worst cases with 8 new tokens: 10, 16 and 8 tokens = 3, 4 and 2 blocks of 4
        assertEquals(7, BatchGenerator.blocksForFullBatch(requests, 2, 8, 4));
        assertEquals(9, BatchGenerator.blocksForFullBatch(requests, 5, 8, 4));
    }
}
