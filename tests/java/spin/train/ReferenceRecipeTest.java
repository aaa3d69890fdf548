package spin.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The shipped configs reproduce what the reference ran: {@code accelerate launch --num_processes=8}
 * with 8 records per device and no accumulation (64 records per optimizer step), 6 epochs for every
 * iteration (scripts/finetune*.sh), and each iteration's learning rate and beta.
 */
class ReferenceRecipeTest {
    /** Rows of the reference's own SPIN_iter0 training split (SPIN issue #10). */
    private static final long SPIN_ITER0_ROWS = 99_584;

    /**
     * Optimizer steps of the reference's run by transformers 4.37 Trainer under accelerate 0.23
     * (even_batches): each process's dataloader has ceil(ceil(N / perDevice) / processes) batches,
     * an epoch is that // accumulation (at least 1) updates, the run ceil(epochs * updates).
     */
    private static long referenceSteps(long rows, int perDevice, int processes, int accumulation, double epochs) {
        long batches = (rows + perDevice - 1) / perDevice;
        long perProcess = (batches + processes - 1) / processes;
        long updatesPerEpoch = Math.max(perProcess / accumulation, 1);
        return (long) Math.ceil(epochs * updatesPerEpoch);
    }

    @ParameterizedTest(name = "iteration {0}")
    @CsvSource({"0, 5.0e-7, 0.1", "1, 5.0e-7, 0.1", "2, 1.0e-7, 0.1", "3, 1.0e-7, 5.0"})
    void eachConfigTakesTheReferenceStepsOnOneDeviceAndOnEight(int iteration, double learningRate, double beta)
            throws IOException {
        TrainConfig config = TrainConfig.load(Path.of("configs", "config_iter" + iteration + ".yaml"), List.of());
        long reference = referenceSteps(SPIN_ITER0_ROWS, 8, 8, 1, 6);
        assertEquals(9336, reference, "1556 updates per epoch x 6 epochs");
        for (int devices : new int[] {1, 8}) {
            StepPlan plan = StepPlan.of(config, SPIN_ITER0_ROWS, devices);
            assertEquals(reference, plan.totalSteps(), devices + " device(s)");
            assertEquals(64, plan.globalBatch(), devices + " device(s)");
            assertEquals(8 / devices, plan.accumulation(), devices + " device(s)");
            // HF get_warmup_steps: ceil(max_steps * warmup_ratio)
            assertEquals((long) Math.ceil(reference * 0.1), config.schedule(plan.totalSteps()).warmupSteps());
        }
        assertEquals(learningRate, config.learningRate());
        assertEquals(beta, config.beta());
        assertEquals(6.0, config.numTrainEpochs(), "the scripts run 6 epochs in every iteration");
        assertEquals("rmsprop", config.optimizer().name());
        assertEquals(iteration == 0 ? 1 : 2, config.datasetMixer().size(), "iteration " + iteration + " mixes with the previous one's data");
        assertEquals(Path.of("outputs", "iter" + iteration + "-ckpt"), config.outputDir());
    }

    @Test
    void iterationZeroPinsTheReferencesModelRevision() throws IOException {
        TrainConfig config = TrainConfig.load(Path.of("configs", "config_iter0.yaml"), List.of());
        assertEquals("ac6e600eefcce74f5e8bae1035d4f66019e93190", config.modelRevision().orElseThrow());
    }

    @Test
    void trainingAModelDownloadedAtAnotherRevisionIsRefusedBeforeItStarts(@TempDir Path dir) throws IOException {
        Path model = TinyTrainingData.model(dir.resolve("model"));
        Path metadata = model.resolve(".cache/huggingface/download/config.json.metadata");
        Files.createDirectories(metadata.getParent());
        Files.writeString(metadata, "3bac9e5f2c2bde4c1e3b5dd8bdc1ea3e0d5e4b7a\netag\n1.0\n");
        TrainConfig config = TrainConfig.of(Map.of("model_name_or_path", model.toString(),
                "dataset_mixer", Map.of(TinyTrainingData.reversals(dir.resolve("data")).toString(), 1.0),
                "output_dir", dir.resolve("out").toString(), "model_revision", "ac6e600eefcce74f5e8bae1035d4f66019e93190"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Trainer.run(config, Trainer.Mode.SPIN, false, new PrintWriter(new StringWriter())));
        assertTrue(e.getMessage().startsWith("model_revision ac6e600eefcce74f5e8bae1035d4f66019e93190 but " + model
                + " was downloaded at commit 3bac9e5"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("out")), "nothing written");
    }

    @Test
    void aGlobalBatchThatDoesNotDivideIsRefusedWithTheArithmetic() {
        TrainConfig config = TrainConfig.of(Map.of("model_name_or_path", "m", "dataset_mixer", Map.of("d", 1.0),
                "global_batch_size", 64, "per_device_train_batch_size", 12));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> StepPlan.of(config, 1000, 1));
        assertTrue(e.getMessage().contains("global_batch_size 64 is not a multiple of per_device_train_batch_size 12 x 1 device = 12"),
                e.getMessage());
        TrainConfig eight = TrainConfig.of(Map.of("model_name_or_path", "m", "dataset_mixer", Map.of("d", 1.0),
                "global_batch_size", 32, "per_device_train_batch_size", 8));
        assertEquals(4, eight.gradientAccumulationSteps(1));
        e = assertThrows(IllegalArgumentException.class, () -> eight.gradientAccumulationSteps(8));
        assertTrue(e.getMessage().contains("8 x 8 devices = 64"), e.getMessage());
    }

    @Test
    void globalBatchAndAccumulationTogetherAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainConfig.of(Map.of(
                "model_name_or_path", "m", "dataset_mixer", Map.of("d", 1.0), "global_batch_size", 64,
                "gradient_accumulation_steps", 2)));
        assertTrue(e.getMessage().contains("either global_batch_size or gradient_accumulation_steps"), e.getMessage());
    }

    @Test
    void withoutAGlobalBatchTheAccumulationIsTheConfigsOnEveryDevice() {
        TrainConfig config = TrainConfig.of(Map.of("model_name_or_path", "m", "dataset_mixer", Map.of("d", 1.0),
                "gradient_accumulation_steps", 3));
        assertEquals(3, config.gradientAccumulationSteps(1));
        assertEquals(3, config.gradientAccumulationSteps(8));
        StepPlan plan = StepPlan.of(config, 100, 1);
        assertEquals(13, plan.microBatchesPerEpoch(), "ceil(100 / 8)");
        assertEquals(5, plan.stepsPerEpoch(), "the last step of an epoch takes the one micro-batch left");
        assertEquals(15, plan.totalSteps(), "3 epochs");
    }
}
