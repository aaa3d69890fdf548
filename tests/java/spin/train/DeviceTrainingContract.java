package spin.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.Backend;

/**
 * SPIN training on a device end to end (the Trainer with {@code device: <spec>}: batches, both
 * forwards, the loss, every backward, clipping, RMSprop, checkpoints) against the CPU backend, and
 * the device's own determinism: a resumed run ends bit-identical to an uninterrupted one.
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

    /** Opens and closes {@code spec} through the test tier's check, so a missing device skips the test. */
    static String checked(String spec) {
        try (Backend backend = spin.backend.DeviceUnderTest.openOrSkip(spec)) {
            return spec;
        }
    }
}
