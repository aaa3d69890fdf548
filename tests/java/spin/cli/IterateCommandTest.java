package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.cli.CliRun.run;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.train.TinyTrainingData;

/** spin iterate with a shipped-style config: generate, convert, train in one command. */
class IterateCommandTest {
    @TempDir
    Path dir;

    /**
     * A later iteration starts from another model than the config names, so the config's
     * model_revision (which pins the model it names) must not be held against it; the model here
     * even records another hub commit, which train alone would refuse.
     */
    @Test
    void anIterationRunsAReferenceStyleConfigOnAnotherModel() throws IOException {
        Path model = TinyTrainingData.model(dir.resolve("iter0-output"));
        Path metadata = model.resolve(".cache/huggingface/download/config.json.metadata");
        Files.createDirectories(metadata.getParent());
        Files.writeString(metadata, "3bac9e5f2c2bde4c1e3b5dd8bdc1ea3e0d5e4b7a\netag\n1.0\n");
        Path data = TinyTrainingData.reversals(dir.resolve("data"));
        Path config = dir.resolve("config_iter1.yaml");
        Files.writeString(config, """
                model_name_or_path: models/zephyr-7b-sft-full
                model_revision: ac6e600eefcce74f5e8bae1035d4f66019e93190
                dataset_mixer:
                  data/SPIN_iter0: 1.0
                global_batch_size: 8
                per_device_train_batch_size: 4
                max_length: 64
                max_prompt_length: 32
                max_steps: 1
                logging_steps: 1
                bf16: false
                """);
        CliRun.Result r = run("iterate", "--iteration", "1", "--model", model.toString(), "--data", data.toString(), "--work",
                dir.resolve("work").toString(), "--config", config.toString(), "--max-new-tokens", "3", "--threads", "2");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.err().contains("16 records, 1 step (2 per epoch; 2 x 4 records per step)"), r.err());
        assertTrue(Files.exists(dir.resolve("work/iter1/train/train_results.json")));
    }
}
