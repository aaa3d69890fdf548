package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.cli.CliRun.run;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.train.TinyTrainingData;

/** spin train and spin sft through the real command line. */
class TrainCommandsTest {
    @TempDir
    static Path shared;
    private static Path model, data;

    @TempDir
    Path dir;

    @BeforeAll
    static void writeModelAndData() throws IOException {
        model = TinyTrainingData.model(shared.resolve("model"));
        data = TinyTrainingData.reversals(shared.resolve("data"));
    }

    private Path config(Path out) throws IOException {
        Path yaml = dir.resolve("config.yaml");
        Files.writeString(yaml, "model_name_or_path: " + model + "\ndataset_mixer:\n  " + data + ": 1.0\n"
                + "output_dir: " + out + "\nper_device_train_batch_size: 8\nmax_length: 64\nmax_prompt_length: 32\n"
                + "num_train_epochs: 1\nlogging_steps: 1\nhub_model_id: ignored\n");
        return yaml;
    }

    @Test
    void trainRunsAConfigWithOverridesAndResumeAcceptsAFinishedRun() throws IOException {
        Path out = dir.resolve("out");
        CliRun.Result r = run("train", config(out).toString(), "--learning_rate=1.0e-4", "--save_strategy", "steps", "--save_steps=1",
                "--threads=2");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.err().contains("note: ignoring keys that only matter to the Python stack: hub_model_id"), r.err());
        assertTrue(r.err().contains("step 2/2"), r.err());
        assertEquals(2, Files.readAllLines(out.resolve("metrics.jsonl")).size());
        assertTrue(Files.isDirectory(out.resolve("checkpoint-2")));
        assertTrue(Files.exists(out.resolve("model.safetensors")));
        CliRun.Result again = run("train", config(out).toString(), "--resume");
        assertEquals(0, again.exitCode(), again.err());
        assertTrue(again.err().contains("training already finished"), again.err());
    }

    /** Saved models carry generation_config.json: the source model's own, else one written from config.json. */
    @Test
    void savedModelsCarryAGenerationConfig() throws IOException {
        Path custom = dir.resolve("custom-model");
        TinyTrainingData.model(custom);
        String own = "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n  \"do_sample\": true,\n  \"temperature\": 0.7\n}\n";
        Files.writeString(custom.resolve("generation_config.json"), own);
        Path bare = dir.resolve("bare-model");
        TinyTrainingData.model(bare);
        Files.delete(bare.resolve("generation_config.json"));
        for (Path source : new Path[] {custom, bare}) {
            Path out = dir.resolve("out-" + source.getFileName());
            Path yaml = config(out);
            CliRun.Result r = run("train", yaml.toString(), "--model_name_or_path=" + source, "--save_strategy=steps",
                    "--save_steps=1", "--max_steps=1", "--threads=2");
            assertEquals(0, r.exitCode(), r.err());
            String expected = source == custom ? own
                    : "{\n  \"_from_model_config\" : true,\n  \"bos_token_id\" : 1,\n  \"eos_token_id\" : 2\n}\n";
            assertEquals(expected, Files.readString(out.resolve("generation_config.json")), source.toString());
            assertEquals(expected, Files.readString(out.resolve("checkpoint-1").resolve("generation_config.json")), source.toString());
        }
    }

    @Test
    void badConfigIsOneLineNamingTheKey() throws IOException {
        CliRun.Result r = run("sft", config(dir.resolve("o")).toString(), "--lerning_rate=1");
        assertEquals(1, r.exitCode());
        assertTrue(r.err().strip().matches("spin sft: .*unknown key \"lerning_rate\" \\(did you mean \"learning_rate\"\\?\\).*"), r.err());
        assertEquals(1, r.err().strip().lines().count());
    }
}
