package spin.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceUnderTest;
import spin.backend.Precision;
import spin.backend.SpinLossType;
import spin.data.SequenceLimits;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinRecord;
import spin.data.TruncationMode;
import spin.dist.Communicator;
import spin.dist.InProcessCommunicator;
import spin.model.MemoryPlan;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.optim.Optimizer;
import spin.optim.OptimizerSettings;
import spin.text.ChatMessage;
import spin.text.Tokenizer;

/**
 * {@link MemoryPlan} against the emulated CUDA device's pool peak ({@link Backend#memoryUsage()},
 * the independent measurement: the bytes the emulator's cudaMallocAsync handed out at most), over
 * real SPIN training steps of AdamW with clipping: the plan's {@link MemoryPlan#poolBytesPerGpu()}
 * must be within 10% of the measured peak, for the resident model and for a ZeRO-3 rank, in fp32
 * and bf16, for the training tests' tiny model (unfused head, recompute off) and a wider one
 * (tied embeddings, recompute on, the log-prob fused in chunks of 40 rows).
 *
 * <p>Every sequence is longer than max_length, so every micro-batch is [4, 48] (2 records, real
 * and generated) and the plan is made for exactly the shape trained; the opponent is scored on
 * the same batches first, as the trainer does. The peak is counted from the bytes the device's
 * pool held before the model was loaded.
 */
class EmulatedMemoryPlanTest {
    private static final String DEVICE = "cuda-emu:0";
    private static final int MAX_LENGTH = 48, RECORDS_PER_BATCH = 2, SEQUENCES = 2 * RECORDS_PER_BATCH, STEPS = 2;
    private static final double TOLERANCE = 0.10;
    private static final Duration TIMEOUT = Duration.ofSeconds(120);

    /** Hidden 128, 8 heads of 16 over 2 key-value heads, tied embeddings: wider than the tiny model in every matrix. */
    private static final MistralConfig WIDER = new MistralConfig(MistralConfig.tiny().vocabSize(), 128, 352, 2, 8, 2, 16,
            MistralConfig.tiny().maxPositionEmbeddings(), 1e-5f, 10000f, 4096, true, 0.1f, MistralConfig.tiny().bosTokenId(),
            MistralConfig.tiny().eosTokenId());

    @TempDir
    static Path shared;
    private static Path tinyModel, widerModel;

    @BeforeAll
    static void writeModels() throws IOException {
        tinyModel = TinyTrainingData.model(shared.resolve("tiny"));
        widerModel = TinyTrainingData.model(shared.resolve("wider"), WIDER);
    }

    /** Eight records whose prompts and answers all run past max_length, so truncation makes every batch [4, 48]. */
    private static List<SpinRecord> records() {
        List<SpinRecord> records = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            String q = "reverse " + "abcdefghijklmnopqrstuvwxyz".repeat(2) + i;
            records.add(new SpinRecord(
                    List.of(ChatMessage.user(q), ChatMessage.assistant(new StringBuilder(q).reverse().toString().repeat(2))),
                    List.of(ChatMessage.user(q), ChatMessage.assistant(("no idea " + i + " ").repeat(12)))));
        }
        return records;
    }

    /** What a case trains: which model, in which precision, resident or as a ZeRO-3 rank, with which pass settings. */
    private record Case(String model, Precision precision, boolean sharded) {
        MistralConfig config() {
            return model.equals("tiny") ? TinyTrainingData.config() : WIDER;
        }

        Path path() {
            return model.equals("tiny") ? tinyModel : widerModel;
        }

        boolean recompute() {
            return !model.equals("tiny");
        }

        /** Unfused for the tiny model (its whole logits fit the default chunk anyway), chunks of 40 of the 192 rows for the wider. */
        int chunkRows() {
            return model.equals("tiny") ? 0 : 40;
        }

        MemoryPlan plan(int worldSize) {
            return new MemoryPlan(config(), SEQUENCES, MAX_LENGTH, worldSize, recompute(), 2, chunkRows(),
                    precision.computeType(DType.BF16), sharded);
        }
    }

    @ParameterizedTest(name = "{0} {1} sharded {2}")
    @CsvSource({"tiny, FP32, false", "tiny, BF16, false", "tiny, FP32, true", "tiny, BF16, true",
            "wider, FP32, false", "wider, BF16, false", "wider, FP32, true", "wider, BF16, true"})
    void thePlanIsWithinTenPercentOfThePoolPeakOfTrainingSteps(String model, Precision precision, boolean sharded)
            throws IOException {
        Case c = new Case(model, precision, sharded);
        try (Backend backend = DeviceUnderTest.openOrSkip(DEVICE, precision)) {
            long before = backend.memoryUsage().orElseThrow().currentBytes();
            Communicator comm = sharded ? InProcessCommunicator.create(List.of(backend), TIMEOUT).getFirst() : null;
            long measured = trainAndMeasurePeak(c, backend, comm, 0) - before;
            assertWithinTolerance(c, c.plan(1), measured, "world size 1");
        }
    }

    /**
     * World size 2: two emulated devices (cuda-emu:0 and :1, each with its own pool) trained from
     * two threads, each a ZeRO-3 rank: each rank's peak against the per-rank plan.
     */
    @ParameterizedTest(name = "{0} {1}, 2 ranks")
    @CsvSource({"tiny, FP32", "wider, BF16"})
    void eachOfTwoRanksPeaksAtTheRankPlan(String model, Precision precision) throws Exception {
        Case c = new Case(model, precision, true);
        try (Backend first = DeviceUnderTest.openOrSkip(DEVICE, precision);
                Backend second = DeviceUnderTest.openOrSkip("cuda-emu:1", precision)) {
            List<Backend> backends = List.of(first, second);
            long[] before = new long[2], peaks = new long[2];
            for (int r = 0; r < 2; r++) {
                before[r] = backends.get(r).memoryUsage().orElseThrow().currentBytes();
            }
            List<InProcessCommunicator> group = InProcessCommunicator.create(backends, TIMEOUT);
            Throwable[] failures = new Throwable[2];
            List<Thread> threads = new ArrayList<>();
            for (InProcessCommunicator comm : group) {
                threads.add(Thread.ofPlatform().start(() -> {
                    try {
                        peaks[comm.rank()] = trainAndMeasurePeak(c, comm.backend(), comm, comm.rank());
                    } catch (Throwable t) {
                        failures[comm.rank()] = t;
                        comm.abort(t);
                    }
                }));
            }
            for (Thread t : threads) {
                t.join();
            }
            for (Throwable t : failures) {
                if (t != null) {
                    throw new AssertionError("a rank failed", t);
                }
            }
            for (int r = 0; r < 2; r++) {
                assertWithinTolerance(c, c.plan(2), peaks[r] - before[r], "world size 2, rank " + r);
            }
        }
    }

    /**
     * The trainer prints each local rank's pool peak at the end of a run, read from the rank's
     * backend: here a ZeRO-3 rank of one on the emulator, whose backend the test holds.
     */
    @Test
    void theTrainerLogsEachRanksPoolPeak() throws IOException {
        Path data = TinyTrainingData.reversals(shared.resolve("reversals"), ".jsonl");
        Map<String, Object> s = new HashMap<>();
        s.put("model_name_or_path", tinyModel.toString());
        s.put("dataset_mixer", Map.of(data.toString(), 1.0));
        s.put("output_dir", shared.resolve("run").toString());
        s.put("per_device_train_batch_size", 2);
        s.put("max_steps", 1);
        s.put("save_strategy", "no");
        s.put("max_length", 32);
        s.put("max_prompt_length", 16);
        s.put("bf16", false);
        StringWriter console = new StringWriter();
        try (Backend backend = DeviceUnderTest.openOrSkip(DEVICE, Precision.FP32)) {
            Trainer.run(TrainConfig.of(s), Trainer.Mode.SPIN, false, InProcessCommunicator.create(List.of(backend), TIMEOUT),
                    new PrintWriter(console));
            String line = "peak device memory: " + MemoryPlan.human(backend.memoryUsage().orElseThrow().peakBytes()) + " (rank 0)";
            assertTrue(console.toString().contains(line), console.toString());
        }
    }

    /** The plan's pool peak against the measured one: within {@link #TOLERANCE} of the measured. */
    private static void assertWithinTolerance(Case c, MemoryPlan plan, long measured, String what) {
        long planned = plan.poolBytesPerGpu();
        double error = (double) (planned - measured) / measured;
        System.err.printf("[memory plan] %s %s %s %s: plan %,d B, measured pool peak %,d B, error %+.3f%%%n", c.model(),
                c.precision(), c.sharded() ? "ZeRO-3" : "resident", what, planned, measured, 100 * error);
        assertTrue(Math.abs(error) <= TOLERANCE, c + " " + what + ": plan " + MemoryPlan.human(planned) + " vs measured peak "
                + MemoryPlan.human(measured) + " (" + String.format("%+.1f%%", 100 * error) + ")\n" + plan.report());
    }

    /**
     * Loads {@code c}'s model on {@code backend} (a ZeRO-3 rank of {@code comm}'s group where given),
     * scores the opponent, resets the pool's peak and runs {@link #STEPS} SPIN steps of one
     * micro-batch each (rank r of a group its own records); returns the pool's peak.
     */
    private static long trainAndMeasurePeak(Case c, Backend backend, Communicator comm, int rank) throws IOException {
        List<SpinRecord> train = records();
        try (Tokenizer tokenizer = Tokenizer.load(c.path());
                MistralModel policy = comm == null ? ModelCheckpoint.load(c.path(), backend) : ModelCheckpoint.loadSharded(c.path(), comm)) {
            policy.setActivationRecompute(c.recompute());
            policy.setLogProbChunkRows(c.chunkRows());
            SpinCollator collator = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(),
                    new SequenceLimits(MAX_LENGTH, 16, TruncationMode.KEEP_END));
            try (Opponent opponent = PrecomputedOpponent.score(policy, collator, train, List.of(), RECORDS_PER_BATCH, comm);
                    Optimizer optimizer = new OptimizerSettings("adamw", 0, 0.9f, 0.999f, 1e-8f).create(policy)) {
                SpinObjective objective = new SpinObjective(policy, collator, opponent, 0.1f, SpinLossType.SIGMOID);
                TrainingStep step = new TrainingStep(policy, optimizer, objective, 1.0);
                try (MetricMeans interval = new MetricMeans(backend, objective.metricNames(), comm)) {
                    backend.resetPeakMemory();
                    int ranks = comm == null ? 1 : comm.worldSize();
                    for (int s = 0; s < STEPS; s++) {
                        int first = ((s * ranks + rank) * RECORDS_PER_BATCH) % train.size();
                        SpinBatch batch = collator.collate(List.of(collator.features(first, train.get(first)),
                                collator.features(first + 1, train.get(first + 1))));
                        assertEquals(SEQUENCES, batch.rows(), "sequences per micro-batch");
                        assertEquals(MAX_LENGTH, batch.length(), "every sequence is truncated to max_length");
                        step.run(TrainingStep.shares(objective, List.of(batch)), 1e-4f, s + 1, interval);
                    }
                    return backend.memoryUsage().orElseThrow().peakBytes();
                }
            }
        }
    }
}
