package spin.cli;

import static spin.cli.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.cpu.CpuBackend;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;

/** init-model and inspect through the real command line. */
class ModelCommandsTest {
    @TempDir
    Path dir;

    @Test
    void initModelWritesALoadableTinyModelThatInspectValidates() throws Exception {
        Path model = dir.resolve("tiny");
        CliRun.Result init = run("init-model", "--preset", "tiny", "--out", model.toString(), "--seed", "3");
        assertEquals(0, init.exitCode(), init.err());
        assertTrue(Files.isRegularFile(model.resolve("config.json")));
        try (CpuBackend cpu = new CpuBackend(1); MistralModel loaded = ModelCheckpoint.load(model, cpu)) {
            assertEquals(MistralConfig.tiny(), loaded.config());
        }
        CliRun.Result inspect = run("inspect", model.toString(), "--memory", "--batch", "2", "--seq-len", "32", "--gpus", "1");
        assertEquals(0, inspect.exitCode(), inspect.err());
        assertTrue(inspect.out().contains("model.layers.1.mlp.down_proj.weight"), inspect.out());
        assertTrue(inspect.out().contains("Validation: OK"), inspect.out());
        assertTrue(inspect.out().contains("Parameters:            164,160"), inspect.out());
    }

    @Test
    void inspectReportsTheMistral7bMemoryPlan() {
        CliRun.Result r = run("inspect", "--preset", "mistral-7b", "--memory", "--gpus", "1");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("7,241,732,096"), r.out());
        assertTrue(r.out().contains("compute weights:       13.49 GiB (bf16 copy)"), r.out());
        assertTrue(r.out().contains("lm_head + log-prob:    fused, in chunks of 262 rows"), r.out());
        CliRun.Result eight = run("inspect", "--preset", "mistral-7b", "--memory", "--gpus", "8");
        assertEquals(0, eight.exitCode(), eight.err());
        assertTrue(eight.out().contains("ZeRO-3, one rank of 8 (shards of 905,216,512 elements)"), eight.out());
        assertTrue(eight.out().contains("compute weights:       gathered per unit"), eight.out());
        CliRun.Result one = run("inspect", "--preset", "mistral-7b", "--memory", "--devices", "1", "--zero");
        assertEquals(0, one.exitCode(), one.err());
        assertTrue(one.out().contains("ZeRO-3, one rank of 1"), one.out());
        CliRun.Result unfused = run("inspect", "--preset", "mistral-7b", "--memory", "--gpus", "8", "--logprob-chunk-rows", "0");
        assertEquals(0, unfused.exitCode(), unfused.err());
        assertTrue(unfused.out().contains("unfused (the whole [N, V] logits at once)"), unfused.out());
    }

    @Test
    void inspectNamesTheProblemInACorruptFile() throws Exception {
        Path bad = dir.resolve("bad.safetensors");
        Files.write(bad, new byte[] {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' '});
        CliRun.Result r = run("inspect", bad.toString());
        assertEquals(1, r.exitCode());
        assertTrue(r.err().contains(bad.toString()) && r.err().contains("bytes are left over")
                || r.err().contains("header"), r.err());
        CliRun.Result missing = run("inspect", dir.resolve("nothing").toString());
        assertEquals(1, missing.exitCode());
        assertTrue(missing.err().contains("no such file or directory"), missing.err());
    }

    @Test
    void unknownPresetIsAClearError() {
        CliRun.Result r = run("init-model", "--preset", "huge", "--out", dir.toString());
        assertEquals(1, r.exitCode());
        assertTrue(r.err().contains("unknown preset \"huge\"; choose tiny, small or mistral-7b"), r.err());
    }
}
