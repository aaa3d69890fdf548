package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.cli.CliRun.run;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.ChildJvm;
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

    /**
     * A learning rate so large that the first update overflows (1e39 is infinite as a float, and
     * RMSprop's first step multiplies 1e38 by 10): the run stops at step 1 with exit 1, and nothing
     * with those weights is written, neither a checkpoint (the one --resume would pick) nor the
     * final model, which max_steps 1 used to save all-NaN with exit 0.
     */
    @Test
    void aNonFiniteUpdateStopsAtItsStepAndIsNeverSaved() throws IOException {
        String[][] runs = {{"--optim=adamw", "--learning_rate=1.0e+39", "--save_strategy=steps", "--save_steps=1", "--max_steps=4"},
            {"--optim=adamw", "--learning_rate=1.0e+39", "--max_steps=1"},
            {"--optim=rmsprop", "--learning_rate=1.0e+38", "--save_strategy=steps", "--save_steps=1", "--max_steps=4"}};
        for (int i = 0; i < runs.length; i++) {
            Path out = dir.resolve("nan" + i);
            List<String> args = new ArrayList<>(List.of("train", config(out).toString(), "--warmup_ratio=0", "--threads=2"));
            args.addAll(List.of(runs[i]));
            CliRun.Result r = run(args.toArray(String[]::new));
            String what = String.join(" ", runs[i]) + ": " + r.err();
            assertEquals(1, r.exitCode(), what);
            assertTrue(r.err().strip().lines().toList().getLast().matches(
                    "spin train: step 1: the optimizer update at learning rate \\S+ made the weights NaN or Inf; .*"), what);
            Files.createDirectories(out); // the run may have created nothing at all
            try (Stream<Path> written = Files.walk(out)) {
                List<String> names = written.map(p -> out.relativize(p).toString()).toList();
                assertTrue(names.stream().noneMatch(n -> n.startsWith("checkpoint-") || n.startsWith(".checkpoint-")
                        || n.endsWith(".safetensors") || n.equals("train_results.json")), what + " wrote " + names);
            }
        }
    }

    /** An output_dir that cannot be created is refused before the data and the model are loaded. */
    @Test
    void anUnwritableOutputDirFailsBeforeTheModelIsLoaded() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file"), "not a directory");
        Path out = file.resolve("out");
        CliRun.Result r = run("train", config(out).toString(), "--threads=2");
        assertEquals(1, r.exitCode(), r.err());
        assertTrue(r.err().startsWith("spin train: output_dir " + out + " is not writable ("), r.err());
        assertFalse(r.err().contains("scoring"), "the opponent was never scored: " + r.err());
        // not even opened: a model that does not exist is not what it complains about
        CliRun.Result noModel = run("train", config(out).toString(), "--model_name_or_path=" + dir.resolve("no-such-model"));
        assertEquals(1, noModel.exitCode());
        assertTrue(noModel.err().startsWith("spin train: output_dir " + out + " is not writable ("), noModel.err());
    }

    /**
     * Everything a run writes gets the mode the umask gives (rw-r--r-- under 022, so a team can
     * read it), not createTempFile's rw-------, even the tokenizer files copied from a source that
     * is rw-------. Run in a child JVM so that the umask is known.
     */
    @Test
    void writtenFilesRespectTheUmask() throws Exception {
        Path source = TinyTrainingData.model(dir.resolve("private-model"));
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) {
                Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-------"));
            }
        }
        Path out = dir.resolve("shared-out");
        ChildJvm.Result r = ChildJvm.run(ChildJvm.withUmask("022", ChildJvm.command(Main.class, "train", config(out).toString(),
                "--model_name_or_path=" + source, "--save_strategy=steps", "--save_steps=1", "--threads=2")), 300);
        assertEquals(0, r.exitCode(), r.output());
        List<Path> all;
        try (Stream<Path> walk = Files.walk(out)) {
            all = walk.filter(p -> !p.equals(out)).toList();
        }
        assertTrue(all.contains(out.resolve("checkpoint-2/optimizer.safetensors")), all.toString());
        assertTrue(all.contains(out.resolve("tokenizer.json")), all.toString());
        for (Path p : all) {
            String expected = Files.isDirectory(p) ? "rwxr-xr-x" : "rw-r--r--";
            assertEquals(expected, PosixFilePermissions.toString(Files.getPosixFilePermissions(p)), out.relativize(p).toString());
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
