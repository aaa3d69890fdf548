package spin.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import spin.backend.Precision;
import org.junit.jupiter.api.io.TempDir;
import spin.optim.LearningRateSchedule;

/** The YAML keys, their defaults (the reference's config.yaml), overrides and the errors for bad input. */
class TrainConfigTest {
    @TempDir
    Path dir;

    private int files;

    /** Each call writes a new file, so that earlier paths keep their contents. */
    private Path yaml(String text) throws IOException {
        Path p = dir.resolve("config" + files++ + ".yaml");
        Files.writeString(p, text);
        return p;
    }

    @Test
    void readsTheReferenceConfigAndItsDefaults() throws IOException {
        TrainConfig c = TrainConfig.load(yaml("""
                model_name_or_path: models/sft
                dataset_mixer:
                  data/iter0: 1.0
                  data/iter1: 0.5
                dataset_splits:
                - train
                - test
                preprocessing_num_workers: 12
                hub_model_id: zephyr-7b-spin
                learning_rate: 5e-7
                push_to_hub: false
                """), List.of());
        assertEquals(Path.of("models/sft"), c.modelPath());
        assertEquals(List.of("data/iter0", "data/iter1"), List.copyOf(c.datasetMixer().keySet()));
        assertEquals(0.5, c.datasetMixer().get("data/iter1"));
        assertEquals(5e-7, c.learningRate(), "YAML 1.1 reads 5e-7 as text; it is still the number");
        assertEquals(0.1, c.beta());
        assertEquals("rmsprop", c.optimizer().name());
        assertEquals(8, c.trainBatchSize());
        assertEquals(1.0, c.maxGradNorm());
        assertEquals("epoch", c.saveStrategy());
        assertEquals("no", c.evaluationStrategy());
        assertEquals(List.of("preprocessing_num_workers", "hub_model_id", "push_to_hub"), c.ignoredKeys());
    }

    @Test
    void overridesReplaceKeysInOrder() throws IOException {
        TrainConfig c = TrainConfig.load(yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\n"),
                List.of("--learning_rate=1.0e-7", "--beta", "5.0", "--num_train_epochs=6", "--optim=adamw_torch",
                        "--dataset_splits=train", "--do_eval=true", "--save_strategy=no"));
        assertEquals("no", c.saveStrategy(), "YAML 1.1 reads no as false; a strategy key takes it as \"no\"");
        assertEquals(1e-7, c.learningRate());
        assertEquals(5.0, c.beta());
        assertEquals(6.0, c.numTrainEpochs());
        assertEquals("adamw", c.optimizer().name());
        assertEquals(List.of("train"), c.datasetSplits());
        assertEquals("steps", c.evaluationStrategy(), "do_eval alone evaluates every eval_steps");
    }

    @Test
    void badInputNamesTheKeyAndTheFix() throws IOException {
        Path p = yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\nlearning_rat: 1.0e-5\n");
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> TrainConfig.load(p, List.of()));
        assertTrue(unknown.getMessage().contains(p + ": unknown key \"learning_rat\" (did you mean \"learning_rate\"?)"),
                unknown.getMessage());
        IllegalArgumentException notNumber = assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\nbeta: high\n"), List.of()));
        assertTrue(notNumber.getMessage().endsWith("beta must be a number, got \"high\""), notNumber.getMessage());
        IllegalArgumentException noModel = assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(yaml("dataset_mixer: {d: 1.0}\n"), List.of()));
        assertTrue(noModel.getMessage().contains("model_name_or_path is required"), noModel.getMessage());
        IllegalArgumentException hub = assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\npush_to_hub: true\n"), List.of()));
        assertTrue(hub.getMessage().contains("push_to_hub: true is not supported"), hub.getMessage());
        IllegalArgumentException strategy = assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(p, List.of("--learning_rate=1", "--save_strategy=often")));
        assertTrue(strategy.getMessage().contains("unknown key \"learning_rat\""), strategy.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\nsave_strategy: often\n"), List.of()));
    }

    @Test
    void precisionFollowsHfsBf16FlagUnlessGivenAndNamesTheKeyWhenWrong() throws IOException {
        Path p = yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\n");
        assertEquals(Precision.AUTO, TrainConfig.load(p, List.of()).precision(), "bf16: true (HF's default here): the device's own");
        assertEquals(Precision.FP32, TrainConfig.load(p, List.of("--bf16=false")).precision(), "bf16: false trains in fp32");
        assertEquals(Precision.BF16, TrainConfig.load(p, List.of("--bf16=false", "--precision=bf16")).precision(),
                "the precision key wins");
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(p, List.of("--precision=fp16")));
        assertTrue(bad.getMessage().contains("unknown precision \"fp16\"; use auto, fp32 or bf16"), bad.getMessage());
    }

    @Test
    void logprobChunkRowsDefaultsToTheModelsChunkAndRefusesNegatives() throws IOException {
        Path p = yaml("model_name_or_path: m\ndataset_mixer: {d: 1.0}\n");
        assertTrue(TrainConfig.load(p, List.of()).logprobChunkRows().isEmpty(), "null: the model's default chunk");
        assertEquals(0, TrainConfig.load(p, List.of("--logprob_chunk_rows=0")).logprobChunkRows().getAsInt(), "0: unfused");
        assertEquals(128, TrainConfig.load(p, List.of("--logprob_chunk_rows=128")).logprobChunkRows().getAsInt());
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> TrainConfig.load(p, List.of("--logprob_chunk_rows=-1")));
        assertTrue(negative.getMessage().contains("logprob_chunk_rows must be >= 0"), negative.getMessage());
    }

    @Test
    void schedulesFollowHuggingFace() {
        // get_linear_schedule_with_warmup(total 10, warmup ceil(0.1 * 10) = 1)
        LearningRateSchedule linear = new LearningRateSchedule("linear", 1.0, LearningRateSchedule.warmupSteps(0, 0.1, 10), 10);
        assertEquals(0.0, linear.at(0));
        assertEquals(1.0, linear.at(1));
        assertEquals(5.0 / 9, linear.at(5), 1e-15);
        assertEquals(1.0 / 9, linear.at(9), 1e-15);
        // get_cosine_schedule_with_warmup: 0.5 * (1 + cos(pi * progress)) after warmup
        LearningRateSchedule cosine = new LearningRateSchedule("cosine", 2.0, 2, 10);
        assertEquals(1.0, cosine.at(1));
        assertEquals(2.0, cosine.at(2));
        assertEquals(2.0 * 0.5 * (1 + Math.cos(Math.PI * 4 / 8)), cosine.at(6), 1e-15);
        assertEquals(3.0, new LearningRateSchedule("constant", 3.0, 5, 10).at(0), "constant ignores warmup, as HF's does");
        assertEquals(3, LearningRateSchedule.warmupSteps(3, 0.5, 10), "warmup_steps wins over warmup_ratio");
    }
}
