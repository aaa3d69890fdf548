package spin.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import spin.backend.DType;
import spin.backend.SpinLossType;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.data.SpinBatch;
import spin.io.SafetensorsFile;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterLayout.Slot;
import spin.model.TorchFixtures;
import spin.optim.LearningRateSchedule;
import spin.optim.Optimizer;
import spin.optim.OptimizerSettings;

/**
 * Three SPIN optimizer steps on the tiny model against tools/mistral_reference.py's float64
 * PyTorch run (train_fixture.safetensors): HF's linear warmup (the first step at lr 0), clipping by
 * global norm (off at step 0, on at steps 1 and 2), torch's RMSprop and AdamW, and gradient
 * accumulation equal to one large batch.
 *
 * <p>Updates (final minus start weights) are compared, not weights: the first step moves nothing
 * and later steps move weights by ~1e-3 relative, so comparing weights would hide update errors.
 * fp32 arithmetic gives ~1e-6 relative error per op; the updates go through two backward passes
 * and an elementwise division by sqrt of a running mean, so they get 1e-3 relative (L2 per tensor).
 */
class TrainingStepFixtureTest {
    private static final Path DIR = TorchFixtures.DIR;

    private static CpuBackend cpu;
    private static SafetensorsFile fixture;

    @BeforeAll
    static void open() throws IOException {
        cpu = new CpuBackend(2);
        fixture = SafetensorsFile.open(DIR.resolve("train_fixture.safetensors"));
    }

    @AfterAll
    static void close() {
        fixture.close();
        cpu.close();
    }

    private static int[] ints(String name) throws IOException {
        return TorchFixtures.ints(fixture, name);
    }

    private static float[] floats(String name) throws IOException {
        return TorchFixtures.floats(fixture, name);
    }

    /**
     * Reads a fixture batch (real rows first) whose records get indices from {@code firstIndex} on,
     * and files their opponent log-probs under those indices.
     */
    private static SpinBatch batch(String prefix, long firstIndex, FixtureOpponent opponent) throws IOException {
        int[] shape = fixture.tensor(prefix + "_input_ids").intShape();
        int records = shape[0] / 2;
        float[] logps = floats(prefix + "_opponent_logps");
        long[] indices = new long[records];
        for (int r = 0; r < records; r++) {
            indices[r] = firstIndex + r;
            opponent.table.put(indices[r], new float[] {logps[r], logps[records + r]});
        }
        return SpinBatch.of(indices, true, shape[1], ints(prefix + "_input_ids"), ints(prefix + "_attention_mask"),
                ints(prefix + "_labels"));
    }

    /** Serves the fixture's stored opponent numbers by record index (they are not recomputed). */
    private static final class FixtureOpponent implements Opponent {
        final Map<Long, float[]> table = new HashMap<>();

        @Override
        public Tensor scores(SpinBatch batch, Split split) {
            int b = batch.records();
            float[] realThenGenerated = new float[2 * b];
            for (int r = 0; r < b; r++) {
                float[] pair = table.get(batch.recordIndex(r));
                realThenGenerated[r] = pair[0];
                realThenGenerated[b + r] = pair[1];
            }
            return cpu.fromHost(realThenGenerated, 2 * b);
        }
    }

    private static float[] minus(float[] a, float[] b) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = (float) ((double) a[i] - b[i]);
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"rmsprop", "adamw", "adamw_wd"})
    void threeStepsMatchPyTorch(String run) throws IOException {
        float[] lrs = floats(run + "/lr");
        float baseLr = lrs[1];
        float weightDecay = floats(run + "/weight_decay")[0];
        float beta = floats("beta")[0];
        float maxNorm = floats("max_grad_norm")[0];
        LearningRateSchedule schedule = new LearningRateSchedule("linear", baseLr, 1, 3);
        OptimizerSettings settings = new OptimizerSettings(run.equals("rmsprop") ? "rmsprop" : "adamw", weightDecay, 0.9f,
                0.999f, 1e-8f);
        FixtureOpponent opponent = new FixtureOpponent();
        try (MistralModel model = ModelCheckpoint.load(DIR, cpu); Optimizer optimizer = settings.create(model)) {
            Map<String, float[]> start = new HashMap<>();
            for (Slot s : model.parameters().layout().slots()) {
                start.put(s.name(), cpu.read(model.parameters().get(s.name())));
            }
            SpinObjective objective = new SpinObjective(model, null, opponent, beta, SpinLossType.SIGMOID);
            TrainingStep step = new TrainingStep(model, optimizer, objective, maxNorm);
            float[] losses = floats(run + "/loss"), norms = floats(run + "/grad_norm");
            for (int s = 0; s < 3; s++) {
                assertEquals(lrs[s], schedule.at(s), 1e-9 * baseLr, "lr of step " + s);
                SpinBatch b = batch("batch" + s, 100L * s, opponent);
                try (MetricMeans metrics = new MetricMeans(cpu, objective.metricNames())) {
                    TrainingStep.Outcome outcome = step.run(TrainingStep.shares(objective, List.of(b)), (float) schedule.at(s), s + 1, metrics);
                    assertEquals(norms[s], outcome.gradNorm(), 1e-5 * norms[s], "pre-clip gradient norm of step " + s);
                    assertEquals(losses[s], metrics.means("").get("loss"), 1e-5, "loss of step " + s);
                }
                // The step's optimizer pass zeroed the gradient (+0 everywhere, the padding past the slots included).
                float[] left = cpu.read(model.gradients().flat());
                for (int i = 0; i < left.length; i++) {
                    assertEquals(0, Float.floatToRawIntBits(left[i]), "gradient element " + i + " after step " + s);
                }
            }
            for (Slot s : model.parameters().layout().slots()) {
                float[] expectedUpdate = minus(floats(run + "/" + s.name()), start.get(s.name()));
                float[] update = minus(cpu.read(model.parameters().get(s.name())), start.get(s.name()));
                assertTrue(TorchFixtures.relativeError(update, expectedUpdate) < 1e-3,
                        run + " update of " + s.name() + ": relative error " + TorchFixtures.relativeError(update, expectedUpdate));
            }
            for (Map.Entry<String, spin.model.ParameterBuffer> state : optimizer.state().entrySet()) {
                for (Slot s : model.parameters().layout().slots()) {
                    String name = run + "/" + state.getKey() + "/" + s.name();
                    if (!fixture.contains(name)) {
                        continue;
                    }
                    double err = TorchFixtures.relativeError(cpu.read(state.getValue().get(s.name())), floats(name));
                    assertTrue(err < 1e-3, name + ": relative error " + err);
                }
            }
            assertEquals(3, optimizer.steps());
        }
    }

    /**
     * gradient_accumulation_steps 2 over two halves of batch 0 against batch 0 whole: the step's
     * gradient norm matches the fixture's full-batch norm, and the gradients themselves agree.
     */
    @Test
    void accumulatingTwoHalvesEqualsTheWholeBatch() throws IOException {
        // half 0 holds records 0 and 1 of batch 0, half 1 records 2 and 3: the same indices, the same opponent numbers
        FixtureOpponent opponent = new FixtureOpponent();
        SpinBatch whole = batch("batch0", 0, opponent);
        SpinBatch half0 = batch("accum_half0", 0, opponent), half1 = batch("accum_half1", 2, opponent);
        float beta = floats("beta")[0];
        double fixtureNorm = floats("rmsprop/grad_norm")[0];
        try (MistralModel model = ModelCheckpoint.load(DIR, cpu);
                Optimizer optimizer = new OptimizerSettings("adamw", 0, 0.9f, 0.999f, 1e-8f).create(model)) {
            SpinObjective objective = new SpinObjective(model, null, opponent, beta, SpinLossType.SIGMOID);
            try (MetricMeans metrics = new MetricMeans(cpu, objective.metricNames());
                    Tensor values = cpu.allocate(DType.F64, objective.metricNames().size())) {
                // lr 0: the step leaves the weights as they are, so the second comparison starts from the same model
                TrainingStep.Outcome outcome = new TrainingStep(model, optimizer, objective, 0)
                        .run(TrainingStep.shares(objective, List.of(half0, half1)), 0f, 1, metrics);
                assertEquals(fixtureNorm, outcome.gradNorm(), 1e-5 * fixtureNorm);
                assertEquals(floats("rmsprop/loss")[0], metrics.means("").get("loss"), 1e-6);

                objective.train(whole, 1.0, values);
            }
            float[] wholeGradient = cpu.read(model.gradients().flat());
            cpu.fill(model.gradients().flat(), 0f);
            try (Tensor values = cpu.allocate(DType.F64, objective.metricNames().size())) {
                objective.train(half0, 0.5, values);
                objective.train(half1, 0.5, values);
            }
            float[] accumulated = cpu.read(model.gradients().flat());
            double err = TorchFixtures.relativeError(accumulated, wholeGradient);
            assertTrue(err < 1e-6, "accumulated gradient vs whole batch: relative error " + err);
        }
    }
}
