package spin.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
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
import org.junit.jupiter.params.provider.ValueSource;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.Precision;
import spin.dist.Communicator;
import spin.dist.Communicators;

/**
 * ZeRO-3 data-parallel training ({@link Trainer#run(TrainConfig, Trainer.Mode, boolean, List, PrintWriter)})
 * on ranks that are threads of one JVM (CPU backends over InProcessCommunicator; emulated CUDA
 * devices over the emulator's NCCL), written once against the device and run on each, against the independent expectation the issue states: N ranks train as
 * one rank accumulating N micro-batches over the same records.
 *
 * <p>Which equalities are bit for bit, and why: with one micro-batch per rank and clipping off,
 * every rank's micro-batch gradient is computed from the same gathered weights a single rank
 * uses, the reduce-scatter adds the ranks' gradients in rank order (InProcessCommunicator), which
 * is the order a single rank accumulates its micro-batches in, and the loss, metric sums and
 * AdamW update are the same arithmetic: so losses, metrics and final weights are identical.
 * The gradient norm is a sum of shard sums of squares, whose grouping depends on the world size:
 * it is compared to 1e-6 relative, and with clipping on (the factor depends on the norm) the
 * weights are compared to fp32 tolerance. Against one device without ZeRO (whose backward
 * accumulates micro-batches in place, a different rounding), everything is compared to fp32
 * tolerance.
 */
abstract class ZeroTrainingContract {
    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    @TempDir
    static Path shared;
    private static Path model, data;

    @TempDir
    Path dir;

    /** Rank {@code rank}'s backend (skipping the test where the device cannot be opened), computing in {@code precision}. */
    abstract Backend openRank(int rank, Precision precision);

    /**
     * Whether to run the cases whose code path does not depend on the device (other objectives,
     * evaluation, clipping against one device, 4 ranks beside 2, every resume world size): CPU
     * ranks do, the slower emulated ones leave them.
     */
    abstract boolean everyCase();

    private void requireEveryCase() {
        assumeTrue(everyCase(), "runs on CPU ranks; the path does not depend on the device");
    }

    /** The group's communicators over {@code backends}, one per rank. */
    List<Communicator> group(List<Backend> backends) {
        return Communicators.inProcess(backends, TIMEOUT);
    }

    @BeforeAll
    static void writeModelAndData() throws IOException {
        model = TinyTrainingData.model(shared.resolve("model"));
        data = TinyTrainingData.reversals(shared.resolve("data"), ".jsonl");
    }

    private static Map<String, Object> settings(Path out) {
        Map<String, Object> s = new HashMap<>();
        s.put("model_name_or_path", model.toString());
        s.put("dataset_mixer", Map.of(data.toString(), 1.0));
        s.put("output_dir", out.toString());
        s.put("learning_rate", 1e-3);
        s.put("optim", "adamw_torch");
        s.put("per_device_train_batch_size", 2);
        s.put("max_steps", 2);
        s.put("logging_steps", 1);
        s.put("save_strategy", "no");
        s.put("max_length", 32);
        s.put("max_prompt_length", 16);
        s.put("bf16", false);
        s.put("max_grad_norm", 0.0);
        s.put("threads", 1);
        return s;
    }

    /** Trains on {@code ranks} ranks (each one thread) with ZeRO-3. */
    private void trainSharded(Map<String, Object> settings, int ranks, boolean resume) throws IOException {
        trainSharded(settings, ranks, resume, Trainer.Mode.SPIN);
    }

    private void trainSharded(Map<String, Object> settings, int ranks, boolean resume, Trainer.Mode mode) throws IOException {
        Precision precision = Precision.parse((String) settings.getOrDefault("precision", "fp32"));
        List<Backend> backends = new ArrayList<>();
        try {
            for (int r = 0; r < ranks; r++) {
                backends.add(openRank(r, precision));
            }
            List<Communicator> communicators = group(backends);
            try {
                Trainer.run(TrainConfig.of(settings), mode, resume, communicators, new PrintWriter(new StringWriter()));
            } finally {
                communicators.forEach(Communicator::close);
            }
        } finally {
            backends.forEach(Backend::close);
        }
    }

    /** One device of the kind under test without ZeRO: the settings' device key names it. */
    abstract String oneDevice();

    private void trainOnOneDevice(Map<String, Object> settings, boolean resume) throws IOException {
        settings = with(settings, "device", oneDevice());
        Trainer.run(TrainConfig.of(settings), Trainer.Mode.SPIN, resume, new PrintWriter(new StringWriter()));
    }

    private static Map<String, Object> with(Map<String, Object> base, Object... keysAndValues) {
        Map<String, Object> s = new HashMap<>(base);
        for (int i = 0; i < keysAndValues.length; i += 2) {
            s.put((String) keysAndValues[i], keysAndValues[i + 1]);
        }
        return s;
    }

    @ParameterizedTest(name = "{0} ranks")
    @ValueSource(ints = {2, 4})
    void ranksTrainBitForBitAsOneRankAccumulatingTheirMicroBatches(int ranks) throws IOException {
        if (ranks > 2) {
            requireEveryCase();
        }
        ranksTrainAsOneRank(Map.of(), ranks);
    }

    /** {@code ranks} ranks against one rank accumulating {@code ranks} micro-batches, both with {@code extra} settings: bit for bit. */
    void ranksTrainAsOneRank(Map<String, Object> extra, int ranks) throws IOException {
        Path many = dir.resolve("ranks"), one = dir.resolve("one");
        Map<String, Object> base = new HashMap<>(settings(many));
        base.putAll(extra);
        trainSharded(base, ranks, false);
        trainSharded(with(base, "output_dir", one.toString(), "gradient_accumulation_steps", ranks), 1, false);
        assertSameMetrics(one, many, 0, 1e-6);
        assertSameWeights(one, many, 0);
    }

    /**
     * The other paths through a step on 2 ranks, each bit for bit as one rank with accumulation 2:
     * supervised fine-tuning, a frozen opponent scored at every step (a second sharded model), and
     * evaluation every step (4 test records in 2 batches: one per rank, or a filler).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"sft", "frozen opponent", "evaluation"})
    void otherPathsTrainBitForBitAsOneRank(String variant) throws IOException {
        requireEveryCase();
        Trainer.Mode mode = variant.equals("sft") ? Trainer.Mode.SFT : Trainer.Mode.SPIN;
        Object[] extra = switch (variant) {
            case "frozen opponent" -> new Object[] {"precompute_opponent", false};
            case "evaluation" -> new Object[] {"evaluation_strategy", "steps", "eval_steps", 1, "per_device_eval_batch_size", 2};
            default -> new Object[0];
        };
        Path many = dir.resolve("ranks"), one = dir.resolve("one");
        trainSharded(with(settings(many), extra), 2, false, mode);
        trainSharded(with(with(settings(one), extra), "gradient_accumulation_steps", 2), 1, false, mode);
        assertSameMetrics(one, many, 0, 1e-6);
        assertSameWeights(one, many, 0);
        if (variant.equals("evaluation")) {
            assertEquals(2, TinyTrainingData.metrics(many).stream().filter(n -> n.has("eval_loss")).count());
        }
    }

    /**
     * per_device_train_batch_size 3 makes 6 micro-batches an epoch (the last of one record), so
     * 4 ranks' second step has two: the other two ranks run fillers, which count nowhere.
     */
    @Test
    void ranksWithoutAMicroBatchInTheEpochsLastStepChangeNothing() throws IOException {
        Path many = dir.resolve("ranks"), one = dir.resolve("one");
        trainSharded(with(settings(many), "per_device_train_batch_size", 3), 4, false);
        trainSharded(with(settings(one), "per_device_train_batch_size", 3, "gradient_accumulation_steps", 4), 1, false);
        assertSameMetrics(one, many, 0, 1e-6);
        assertSameWeights(one, many, 0);
    }

    @Test
    void ranksFollowOneDeviceWithoutZeroAndWithClipping() throws IOException {
        requireEveryCase();
        Path many = dir.resolve("ranks"), one = dir.resolve("one");
        Map<String, Object> clipped = with(settings(many), "max_grad_norm", 1.0, "global_batch_size", 8);
        trainSharded(clipped, 4, false);
        trainOnOneDevice(with(clipped, "output_dir", one.toString()), false);
        assertSameMetrics(one, many, 1e-5, 1e-5);
        assertSameWeights(one, many, 1e-5);
    }

    /**
     * Saved at 4 ranks after step 1 (of 2), resumed at 4, 2 and 1 (ZeRO-3 at world size 1, and one
     * device without ZeRO): the same 8 records per step each time (global_batch_size), the
     * optimizer state and master weights resharded. At the same world size the resume ends bit for
     * bit where the uninterrupted run does; at another the accumulation groups the ranks' sums
     * differently, so fp32 tolerance.
     */
    @Test
    void checkpointsWrittenAtFourRanksResumeAtFourTwoAndOne() throws IOException {
        Path full = dir.resolve("full");
        Map<String, Object> base = with(settings(full), "global_batch_size", 8, "save_strategy", "steps", "save_steps", 1);
        trainSharded(base, 4, false);
        Path checkpoint = full.resolve("checkpoint-1");
        assertTrue(Files.isRegularFile(checkpoint.resolve("zero").resolve("manifest.json")));
        for (int r = 0; r < 4; r++) {
            assertTrue(Files.isRegularFile(checkpoint.resolve("zero").resolve(CheckpointState.rankFileName(r, 4))), "rank " + r);
        }
        // The emulator resumes at 2 only: the resharding is device-independent host code.
        for (int ranks : everyCase() ? new int[] {4, 2, 1, 0} : new int[] {2}) {
            Path resumed = dir.resolve("resumed-" + ranks);
            TinyTrainingData.copyTree(checkpoint, resumed.resolve("checkpoint-1"));
            Map<String, Object> s = with(base, "output_dir", resumed.toString());
            if (ranks == 0) {
                trainOnOneDevice(s, true);
            } else {
                trainSharded(s, ranks, true);
            }
            assertSameWeights(full, resumed, ranks == 4 ? 0 : 1e-5);
        }
    }

    /**
     * A group whose ranks are in two "processes" (two Trainer.run calls, each with one rank of the
     * group, sharing output_dir as nodes share a filesystem): only rank 0's process locks and
     * tidies output_dir, each writes its shards, and the run ends as one process with both ranks
     * does, bit for bit, checkpoints included.
     */
    @Test
    void ranksSplitOverProcessesTrainAsInOne() throws Exception {
        requireEveryCase();
        Path together = dir.resolve("together"), apart = dir.resolve("apart");
        Map<String, Object> base = with(settings(together), "save_strategy", "steps", "save_steps", 1);
        trainSharded(base, 2, false);
        List<Backend> backends = List.of(openRank(0, Precision.FP32), openRank(1, Precision.FP32));
        List<Communicator> group = group(backends);
        try (var threads = java.util.concurrent.Executors.newFixedThreadPool(2)) {
            List<java.util.concurrent.Future<Trainer.Result>> runs = new ArrayList<>();
            for (Communicator rank : group) {
                runs.add(threads.submit(() -> Trainer.run(TrainConfig.of(with(base, "output_dir", apart.toString())),
                        Trainer.Mode.SPIN, false, List.of(rank), new PrintWriter(new StringWriter()))));
            }
            for (var run : runs) {
                assertEquals(2, assertTimeoutPreemptively(Duration.ofSeconds(60), () -> run.get()).steps());
            }
        } finally {
            group.forEach(Communicator::close);
            backends.forEach(Backend::close);
        }
        assertSameMetrics(together, apart, 0, 0);
        assertSameWeights(together, apart, 0);
        for (String file : List.of("checkpoint-1/zero/" + CheckpointState.rankFileName(0, 2),
                "checkpoint-1/zero/" + CheckpointState.rankFileName(1, 2), "checkpoint-2/zero/manifest.json")) {
            assertArrayEquals(Files.readAllBytes(together.resolve(file)), Files.readAllBytes(apart.resolve(file)), file);
        }
    }

    @Test
    void aRankThatFailsMidStepStopsEveryRankWithItsError() {
        List<Backend> backends = List.of(openRank(0, Precision.FP32), openRank(1, Precision.FP32), openRank(2, Precision.FP32));
        List<Communicator> group = new ArrayList<>(group(backends));
        try {
            // Rank 1 fails in its third reduce-scatter: in the first step's backward, the others waiting in theirs.
            group.set(1, new FailingReduceScatter(group.get(1), 3));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> assertTimeoutPreemptively(Duration.ofSeconds(60),
                    () -> Trainer.run(TrainConfig.of(settings(dir.resolve("out"))), Trainer.Mode.SPIN, false, group,
                            new PrintWriter(new StringWriter()))));
            assertEquals("injected failure on rank 1", e.getMessage());
            assertFalse(Files.exists(dir.resolve("out").resolve(Trainer.RESULTS_FILE)));
        } finally {
            group.forEach(Communicator::close);
            backends.forEach(Backend::close);
        }
    }

    /** A rank's communicator whose {@code failAt}-th reduce-scatter throws (a device fault, say). */
    private record FailingReduceScatter(Communicator inner, int failAt, int[] calls) implements Communicator {
        FailingReduceScatter(Communicator inner, int failAt) {
            this(inner, failAt, new int[1]);
        }

        @Override
        public int rank() {
            return inner.rank();
        }

        @Override
        public int worldSize() {
            return inner.worldSize();
        }

        @Override
        public Backend backend() {
            return inner.backend();
        }

        @Override
        public void allGather(Tensor out, Tensor in) {
            inner.allGather(out, in);
        }

        @Override
        public void reduceScatter(Tensor out, Tensor in) {
            if (++calls[0] == failAt) {
                throw new IllegalStateException("injected failure on rank " + rank());
            }
            inner.reduceScatter(out, in);
        }

        @Override
        public void allReduce(Tensor inOut) {
            inner.allReduce(inOut);
        }

        @Override
        public void broadcast(Tensor inOut, int root) {
            inner.broadcast(inOut, root);
        }

        @Override
        public void barrier() {
            inner.barrier();
        }

        @Override
        public void abort(Throwable cause) {
            inner.abort(cause);
        }
    }

    /** Every logged metric of two runs: {@code tolerance} relative (0: bit for bit), the gradient norm to {@code normTolerance}. */
    private static void assertSameMetrics(Path expectedRun, Path actualRun, double tolerance, double normTolerance)
            throws IOException {
        List<JsonNode> expected = TinyTrainingData.metrics(expectedRun), actual = TinyTrainingData.metrics(actualRun);
        assertEquals(expected.size(), actual.size(), "metric lines");
        for (int i = 0; i < expected.size(); i++) {
            JsonNode e = TinyTrainingData.withoutWallClock(expected.get(i)), a = TinyTrainingData.withoutWallClock(actual.get(i));
            assertEquals(e.size(), a.size(), "line " + i + " fields");
            for (var fields = e.properties().iterator(); fields.hasNext(); ) {
                var field = fields.next();
                if (!field.getValue().isNumber()) {
                    assertEquals(field.getValue(), a.get(field.getKey()), "line " + i + " " + field.getKey());
                    continue;
                }
                double want = field.getValue().asDouble(), got = a.get(field.getKey()).asDouble();
                double tol = field.getKey().equals("grad_norm") ? normTolerance : tolerance;
                if (tol == 0) {
                    assertEquals(want, got, "line " + i + " " + field.getKey() + " bit for bit");
                } else {
                    assertEquals(want, got, tol * (1 + Math.abs(want)), "line " + i + " " + field.getKey());
                }
            }
        }
    }

    /** The final fp32 weights of two runs: bit for bit at tolerance 0, else each within {@code tolerance} (absolute + relative). */
    private static void assertSameWeights(Path expectedRun, Path actualRun, double tolerance) throws IOException {
        Map<String, float[]> expected = TinyTrainingData.weights(expectedRun), actual = TinyTrainingData.weights(actualRun);
        assertEquals(expected.keySet(), actual.keySet());
        for (String name : expected.keySet()) {
            float[] e = expected.get(name), a = actual.get(name);
            if (tolerance == 0) {
                assertArrayEquals(e, a, name + " bit for bit");
            } else {
                for (int i = 0; i < e.length; i++) {
                    assertEquals(e[i], a[i], tolerance * (1 + Math.abs(e[i])), name + "[" + i + "]");
                }
            }
        }
    }
}
