package spin.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import spin.backend.Backend;
import spin.backend.DeviceSpec;
import spin.backend.Devices;
import spin.backend.Precision;
import spin.backend.SpinLossType;
import spin.backend.cpu.CpuBackend;
import spin.data.SequenceLimits;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinRecord;
import spin.data.TruncationMode;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.optim.Optimizer;
import spin.optim.OptimizerSettings;
import spin.text.Tokenizer;

/**
 * SPIN training on a device end to end (the Trainer with {@code device: <spec>}: batches, both
 * forwards, the loss, every backward, clipping, RMSprop, checkpoints) against the CPU backend, the
 * device's own determinism (a resumed run ends bit-identical to an uninterrupted one), and how
 * often a step makes the host wait for the device.
 *
 * <p>Opened for fp32, both backends differ in summation order only. The logged metrics are sums
 * over the batch and must agree to 1e-4. Weights are held to an L2 bound, not an element-wise one:
 * RMSprop's first steps move each weight by about lr / sqrt(1 - alpha) times the sign of its
 * gradient, so a gradient element that is zero up to rounding may take either sign on the two
 * backends and move its weight the other way.
 */
abstract class DeviceTrainingContract {
    private static final double LR = 1e-3;
    private static final int STEPS = 3;

    @TempDir
    static Path shared;
    private static Path model, data;

    @TempDir
    Path dir;

    /** The device spec under test, after checking it can be opened (else the test is skipped). */
    abstract String deviceSpec();

    @BeforeAll
    static void writeModelAndData() throws IOException {
        model = TinyTrainingData.model(shared.resolve("model"));
        data = TinyTrainingData.reversals(shared.resolve("data"), ".jsonl");
    }

    private Map<String, Object> settings(Path out, String device) {
        Map<String, Object> s = new HashMap<>();
        s.put("model_name_or_path", model.toString());
        s.put("dataset_mixer", Map.of(data.toString(), 1.0));
        s.put("output_dir", out.toString());
        s.put("learning_rate", LR);
        s.put("per_device_train_batch_size", 2);
        s.put("max_steps", STEPS);
        s.put("logging_steps", 1);
        s.put("save_strategy", "no");
        s.put("max_length", 32);
        s.put("max_prompt_length", 16);
        s.put("bf16", false);
        s.put("threads", 2);
        s.put("device", device);
        return s;
    }

    private static void train(Map<String, Object> settings, boolean resume) throws IOException {
        Trainer.run(TrainConfig.of(settings), Trainer.Mode.SPIN, resume, new PrintWriter(new StringWriter()));
    }

    /**
     * AdamW and RMSprop write the BF16 compute copy in their step's own pass: after a step on random
     * gradients it holds, bit for bit, the updated master rounded by a separate cast, which the next
     * pass then skips (a copy the step failed to write would still hold the weights before it).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"adamw", "rmsprop"})
    void anOptimizerStepLeavesTheComputeCopyTheCastOfTheMaster(String optimizerName) throws IOException {
        try (Backend backend = Devices.open(DeviceSpec.parse(deviceSpec()), 0, Precision.BF16);
                MistralModel policy = ModelCheckpoint.load(model, backend);
                Optimizer optimizer = new OptimizerSettings(optimizerName, 0.01f, 0.9f, 0.999f, 1e-8f).create(policy)) {
            org.junit.jupiter.api.Assumptions.assumeTrue(policy.computeWeightsForStep() != null,
                    deviceSpec() + " keeps no BF16 compute copy");
            spin.backend.Tensor grads = policy.masterGradients().flat();
            float[] g = new float[Math.toIntExact(grads.size())];
            java.util.SplittableRandom random = new java.util.SplittableRandom(7);
            for (int i = 0; i < g.length; i++) {
                g[i] = (float) (random.nextDouble() - 0.5) * 1e-2f;
            }
            backend.write(grads, g);
            float[] before = backend.read(policy.masterWeights().flat());
            optimizer.step((float) LR);
            float[] master = backend.read(policy.masterWeights().flat());
            float[] copy = backend.read(policy.computeWeightsForStep().flat());
            int moved = 0;
            for (int i = 0; i < master.length; i++) {
                float rounded = spin.backend.BFloat16.toFloat(spin.backend.BFloat16.fromFloat(master[i]));
                assertEquals(Float.floatToRawIntBits(rounded), Float.floatToRawIntBits(copy[i]), "element " + i);
                moved += master[i] != before[i] ? 1 : 0;
            }
            assertTrue(moved > master.length / 2, "the step moved " + moved + " of " + master.length + " weights");
        }
    }

    @Test
    void threeSpinStepsMatchTheCpuBackend() throws IOException {
        assertFollowsTheCpu(Map.of(), 1e-4, 1e-2);
    }

    /**
     * The same steps computing in BF16 (activations, compute weights) follow the fp32 CPU run: every
     * logged metric within 3% (the fixture's bf16 log-probs and loss err by well under that; a
     * metric drifting further means a wrong or stale bf16 path) and the weights' distance at most a
     * tenth of what they moved (RMSprop moves a weight by about lr times its gradient's sign, which
     * bf16 flips for near-zero gradients more often than fp32 does; cuda-emu measures 3%).
     */
    @Test
    void threeSpinStepsInBf16FollowTheCpuBackend() throws IOException {
        assertFollowsTheCpu(Map.of("precision", "bf16"), 3e-2, 0.1);
    }

    private void assertFollowsTheCpu(Map<String, Object> deviceSettings, double metricTolerance, double weightTolerance)
            throws IOException {
        String device = deviceSpec();
        Path onCpu = dir.resolve("cpu"), onDevice = dir.resolve("device");
        train(settings(onCpu, "cpu"), false);
        Map<String, Object> onDeviceSettings = settings(onDevice, device);
        onDeviceSettings.putAll(deviceSettings);
        train(onDeviceSettings, false);

        List<JsonNode> expected = TinyTrainingData.metrics(onCpu), actual = TinyTrainingData.metrics(onDevice);
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            JsonNode e = TinyTrainingData.withoutWallClock(expected.get(i)), a = TinyTrainingData.withoutWallClock(actual.get(i));
            assertEquals(e.size(), a.size(), "line " + i + " fields");
            for (var fields = e.fields(); fields.hasNext(); ) {
                var field = fields.next();
                assertTrue(a.has(field.getKey()), "line " + i + " lacks " + field.getKey());
                if (field.getValue().isNumber()) {
                    double want = field.getValue().asDouble(), got = a.get(field.getKey()).asDouble();
                    assertEquals(want, got, metricTolerance * (1 + Math.abs(want)), "line " + i + " " + field.getKey() + " on "
                            + device + " " + deviceSettings);
                }
            }
        }
        Map<String, float[]> start = TinyTrainingData.weights(model), cpuEnd = TinyTrainingData.weights(onCpu),
                deviceEnd = TinyTrainingData.weights(onDevice);
        double moved = 0, apart = 0;
        for (String name : start.keySet()) {
            float[] s = start.get(name), c = cpuEnd.get(name), d = deviceEnd.get(name);
            for (int i = 0; i < s.length; i++) {
                moved += (c[i] - s[i]) * (double) (c[i] - s[i]);
                apart += (d[i] - c[i]) * (double) (d[i] - c[i]);
            }
        }
        assertTrue(moved > 0, "training moved the weights");
        System.err.printf("[training on %s %s] weights %.3g apart after moving %.3g%n", device, deviceSettings, Math.sqrt(apart),
                Math.sqrt(moved));
        assertTrue(Math.sqrt(apart) <= weightTolerance * Math.sqrt(moved),
                "device and CPU weights differ by " + Math.sqrt(apart) + " after moving " + Math.sqrt(moved) + " " + deviceSettings);
    }

    @ParameterizedTest(name = "precision {0}")
    @ValueSource(strings = {"fp32", "bf16"})
    void aResumedRunOnTheDeviceEndsBitIdenticalToAnUninterruptedOne(String precision) throws IOException {
        String device = deviceSpec();
        Path straight = dir.resolve("straight"), resumed = dir.resolve("resumed");
        Map<String, Object> base = settings(straight, device);
        base.put("precision", precision);
        base.put("max_steps", 4);
        base.put("save_strategy", "steps");
        base.put("save_steps", 2);
        train(base, false);

        Map<String, Object> second = new HashMap<>(base);
        second.put("output_dir", resumed.toString());
        TinyTrainingData.copyTree(straight.resolve("checkpoint-2"), resumed.resolve("checkpoint-2"));
        train(second, true);
        for (String file : new String[] {"model.safetensors", "checkpoint-4/optimizer.safetensors"}) {
            assertArrayEquals(Files.readAllBytes(straight.resolve(file)), Files.readAllBytes(resumed.resolve(file)), file);
        }
        List<JsonNode> a = TinyTrainingData.metrics(straight), b = TinyTrainingData.metrics(resumed);
        assertEquals(TinyTrainingData.withoutWallClock(a.get(a.size() - 1)),
                TinyTrainingData.withoutWallClock(b.get(b.size() - 1)));
    }

    /**
     * A non-finite step stops the run naming the step and its first cause, with the steps before
     * it saved and nothing of it (the checks are read once, at the step's end, before any save):
     * AdamW at lr 1e30 blows up a later step's forward (the loss, or the gradient norm), RMSprop
     * at 1e38 overflows the weights of step 1 with a finite loss and norm. On the CPU and the
     * device.
     */
    @ParameterizedTest(name = "{0} at lr {1}")
    @CsvSource({"adamw, 1e30, 'step \\d+: the (SPIN loss|gradient norm) is (NaN|-?Infinity)'",
            "rmsprop, 1e38, 'step 1: the optimizer update at learning rate 1.0E38 made the weights NaN or Inf; .*'"})
    void aDivergedStepStopsTrainingBeforeAnythingOfItIsSaved(String optim, double lr, String message) throws IOException {
        for (String device : new String[] {"cpu", deviceSpec()}) {
            Path out = dir.resolve(optim + "-" + device);
            Map<String, Object> s = settings(out, device);
            s.put("max_steps", 6);
            s.put("learning_rate", lr);
            s.put("warmup_ratio", 0.0);
            s.put("max_grad_norm", 0.0);
            s.put("optim", optim);
            s.put("save_strategy", "steps");
            s.put("save_steps", 1);
            TrainingDivergedException e = assertThrows(TrainingDivergedException.class, () -> train(s, false));
            assertTrue(e.getMessage().matches(message), device + ": " + e.getMessage());
            long failedStep = Long.parseLong(e.getMessage().replaceAll("step (\\d+):.*", "$1"));
            assertTrue(failedStep < 6, "the run diverged within its steps");
            assertEquals(failedStep - 1, new TrainingCheckpoints(out).list().size(),
                    device + ": every step before the failure was saved, and nothing after");
            assertFalse(Files.exists(out.resolve(Trainer.RESULTS_FILE)));
        }
    }

    /**
     * DESIGN section 3: a SPIN step that does not log waits for the device once (its loss, norm and
     * weight checks in one read) and a logging step once more (the interval's means), for either
     * opponent and with accumulation; the uploads, the loss statistics, the logit means, clipping
     * and the metric sums queue without waiting. Counted by the device itself
     * ({@link Backend#hostSynchronizations}), over the pieces the Trainer's loop runs per step
     * (the rest of its loop is host work), with logging every second step. The metrics read at
     * the logging steps are those of the CPU backend run the same way.
     */
    @ParameterizedTest(name = "accumulation {0}, precomputed opponent {1}")
    @CsvSource({"1, true", "2, true", "2, false"})
    void aStepThatDoesNotLogWaitsForTheDeviceOnce(int accumulation, boolean precomputed) throws IOException {
        String device = deviceSpec();
        List<Map<String, Double>> onCpu = loggedEverySecondStep(new CpuBackend(2), accumulation, precomputed, null);
        List<long[]> waits = new ArrayList<>();
        List<Map<String, Double>> onDevice = loggedEverySecondStep(Devices.open(DeviceSpec.parse(device), 0, Precision.FP32), accumulation, precomputed, waits);
        for (int s = 0; s < waits.size(); s++) {
            long[] w = waits.get(s);
            assertEquals(1, w[0], device + " step " + (s + 1) + " waited " + w[0] + " times");
            assertEquals(s % 2 == 1 ? 1 : 0, w[1], device + " logging after step " + (s + 1) + " waited " + w[1] + " times");
        }
        assertEquals(onCpu.size(), onDevice.size());
        for (int i = 0; i < onCpu.size(); i++) {
            assertEquals(onCpu.get(i).keySet(), onDevice.get(i).keySet());
            for (String name : onCpu.get(i).keySet()) {
                double want = onCpu.get(i).get(name), got = onDevice.get(i).get(name);
                assertEquals(want, got, 1e-4 * (1 + Math.abs(want)), "log " + i + " " + name + " on " + device);
            }
        }
    }

    /**
     * Four SPIN steps on {@code backend} (closed at the end), the interval's means read after every
     * second step; when {@code waits} is given, each step's and each log's count of host waits.
     */
    private static List<Map<String, Double>> loggedEverySecondStep(Backend backend, int accumulation, boolean precomputed,
            List<long[]> waits) throws IOException {
        List<SpinRecord> train = TinyTrainingData.reversalRecords().subList(0, 16);
        List<Map<String, Double>> logs = new ArrayList<>();
        try (backend; Tokenizer tokenizer = Tokenizer.load(model); MistralModel policy = ModelCheckpoint.load(model, backend)) {
            SpinCollator collator = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(),
                    new SequenceLimits(32, 16, TruncationMode.KEEP_END));
            try (Opponent opponent = precomputed ? PrecomputedOpponent.score(policy, collator, train, List.of(), 2, null)
                            : new FrozenOpponent(ModelCheckpoint.load(model, backend));
                    Optimizer optimizer = new OptimizerSettings("rmsprop", 0, 0.9f, 0.999f, 1e-8f).create(policy)) {
                SpinObjective objective = new SpinObjective(policy, collator, opponent, 0.1f, SpinLossType.SIGMOID);
                TrainingStep step = new TrainingStep(policy, optimizer, objective, 1.0);
                try (MetricMeans interval = new MetricMeans(backend, objective.metricNames())) {
                    for (int s = 0; s < 4; s++) {
                        List<SpinBatch> batches = new ArrayList<>();
                        for (int m = 0; m < accumulation; m++) {
                            int first = (s * accumulation + m) * 2 % train.size();
                            batches.add(collator.collate(List.of(collator.features(first, train.get(first)),
                                    collator.features(first + 1, train.get(first + 1)))));
                        }
                        long before = waitsSoFar(backend);
                        step.run(TrainingStep.shares(objective, batches), (float) LR, s + 1, interval);
                        long stepped = waitsSoFar(backend);
                        if (s % 2 == 1) {
                            logs.add(interval.means(""));
                            interval.clear();
                        }
                        if (waits != null) {
                            waits.add(new long[] {stepped - before, waitsSoFar(backend) - stepped});
                        }
                    }
                }
                // The last step's optimizer pass left the gradient +0 everywhere, padding included.
                float[] left = backend.read(policy.masterGradients().flat());
                for (int i = 0; i < left.length; i++) {
                    assertEquals(0, Float.floatToRawIntBits(left[i]), "gradient element " + i + " after the last step");
                }
            }
        }
        return logs;
    }

    private static long waitsSoFar(Backend backend) {
        return backend.hostSynchronizations().orElse(0);
    }

    /** Opens and closes {@code spec} through the test tier's check, so a missing device skips the test. */
    static String checked(String spec) {
        try (Backend backend = spin.backend.DeviceUnderTest.openOrSkip(spec)) {
            return spec;
        }
    }
}
