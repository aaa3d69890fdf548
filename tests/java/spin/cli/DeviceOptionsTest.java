package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.cli.CliRun.run;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.train.TinyTrainingData;

/** --device and --threads, one option set shared by every command that computes. */
class DeviceOptionsTest {
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

    @Test
    void everyComputingCommandTakesTheDeviceAndRunsOnTheCpu() {
        Path scores = dir.resolve("scores.jsonl");
        CliRun.Result r = run("score", "--model", model.toString(), "--data", data.toString(), "--out", scores.toString(),
                "--max-length", "64", "--max-prompt-length", "32", "--device", "cpu", "--threads", "1");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(Files.exists(scores));
        for (String command : new String[] {"score", "generate", "chat", "train", "sft", "iterate", "demo"}) {
            assertTrue(run(command, "--help").out().contains("--device"), command);
        }
        assertTrue(run("bench", "train", "--help").out().contains("--device"));
        assertTrue(run("bench", "generate", "--help").out().contains("--device"));
    }

    /** The commands on the emulated GPU opened for fp32: scores equal the CPU's to fp32 rounding. */
    @Test
    void scoringOnTheEmulatedDeviceGivesTheCpuScores() throws IOException {
        spin.backend.DeviceUnderTest.openOrSkip("cuda-emu:0").close();
        Path onCpu = dir.resolve("cpu.jsonl"), onDevice = dir.resolve("emu.jsonl");
        for (String[] run : new String[][] {{"cpu", onCpu.toString()}, {"cuda-emu", onDevice.toString()}}) {
            CliRun.Result r = run("score", "--model", model.toString(), "--data", data.toString(), "--out", run[1],
                    "--max-length", "32", "--max-prompt-length", "16", "--device", run[0], "--precision", "fp32");
            assertEquals(0, r.exitCode(), r.err());
        }
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var expected = Files.readAllLines(onCpu);
        var actual = Files.readAllLines(onDevice);
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            var e = json.readTree(expected.get(i));
            var a = json.readTree(actual.get(i));
            for (var names = e.fieldNames(); names.hasNext(); ) {
                String name = names.next();
                if (e.get(name).isFloatingPointNumber()) {
                    assertEquals(e.get(name).asDouble(), a.get(name).asDouble(), 1e-4 * (1 + Math.abs(e.get(name).asDouble())),
                            "line " + i + " " + name);
                } else {
                    assertEquals(e.get(name), a.get(name), "line " + i + " " + name);
                }
            }
        }
        // In bf16 the model is loaded for inference (no fp32 master): scoring only runs forward passes.
        Path inBf16 = dir.resolve("emu-bf16.jsonl");
        CliRun.Result bf16 = run("score", "--model", model.toString(), "--data", data.toString(), "--out", inBf16.toString(),
                "--max-length", "32", "--max-prompt-length", "16", "--device", "cuda-emu", "--precision", "bf16");
        assertEquals(0, bf16.exitCode(), bf16.err());
        var rounded = Files.readAllLines(inBf16);
        assertEquals(expected.size(), rounded.size());
        for (int i = 0; i < expected.size(); i++) {
            var e = json.readTree(expected.get(i));
            var a = json.readTree(rounded.get(i));
            assertEquals(e.get("index"), a.get("index"));
            assertTrue(Double.isFinite(a.get("real_logp").asDouble()) && Double.isFinite(a.get("generated_logp").asDouble()),
                    rounded.get(i));
        }
    }

    /**
     * bench train on the emulated GPU prints the pool's peak and the host waits per step: the
     * forward and backward queue everything, so the timing's own wait is the only one. The CPU,
     * which never waits for a device, prints neither.
     */
    @Test
    void benchTrainOnTheEmulatedDeviceCountsOneHostWaitPerStep() {
        spin.backend.DeviceUnderTest.openOrSkip("cuda-emu:0").close();
        String[] shape = {"bench", "train", "--preset", "tiny", "--batch", "2", "--seq-len", "16", "--iters", "2"};
        CliRun.Result emulated = run(concat(shape, "--device", "cuda-emu"));
        assertEquals(0, emulated.exitCode(), emulated.err());
        assertTrue(emulated.out().contains("device memory peak"), emulated.out());
        assertTrue(emulated.out().contains("host synchronisations per step: 1.0 "), emulated.out());
        CliRun.Result cpu = run(concat(shape, "--device", "cpu", "--threads", "1"));
        assertEquals(0, cpu.exitCode(), cpu.err());
        assertFalse(cpu.out().contains("host synchronisations"), cpu.out());
        assertTrue(cpu.out().contains(", 2 layers, ") && cpu.out().contains("model FLOPs"), cpu.out());
        CliRun.Result oneLayer = run(concat(shape, "--device", "cpu", "--threads", "1", "--layers", "1"));
        assertEquals(0, oneLayer.exitCode(), oneLayer.err());
        assertTrue(oneLayer.out().contains(", 1 layers, "), oneLayer.out());
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void aDeviceThatCannotBeOpenedIsOneLineSayingWhyAndNothingIsWritten() throws IOException {
        Path scores = dir.resolve("scores.jsonl");
        CliRun.Result r = run("score", "--model", model.toString(), "--data", data.toString(), "--out", scores.toString(),
                "--device", "cuda:0");
        assertEquals(1, r.exitCode());
        assertTrue(r.err().startsWith("spin score: cannot open device cuda:0: "), r.err());
        assertTrue(r.err().strip().endsWith("; use --device cpu"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertFalse(Files.exists(scores));

        CliRun.Result unknown = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir",
                dir.resolve("gen").toString(), "--device", "gpu");
        assertEquals(1, unknown.exitCode());
        assertEquals("spin generate: unknown device \"gpu\"; use cpu, cuda, cuda:N (GPU N) or cuda-emu[:N]\n", unknown.err());

        CliRun.Result bf16OnCpu = run("score", "--model", model.toString(), "--data", data.toString(), "--out",
                scores.toString(), "--precision", "bf16");
        assertEquals(1, bf16OnCpu.exitCode());
        assertEquals("spin score: the CPU backend computes in fp32 (it is the reference); --precision bf16 needs a CUDA device "
                + "(--device cuda or cuda-emu)\n", bf16OnCpu.err());
        CliRun.Result unknownPrecision = run("score", "--model", model.toString(), "--data", data.toString(), "--out",
                scores.toString(), "--precision", "fp8");
        assertEquals(1, unknownPrecision.exitCode());
        assertEquals("spin score: unknown precision \"fp8\"; use auto, fp32 or bf16\n", unknownPrecision.err());
        assertFalse(Files.exists(scores));

        Path yaml = dir.resolve("config.yaml");
        Files.writeString(yaml, "model_name_or_path: " + model + "\ndataset_mixer:\n  " + data + ": 1.0\noutput_dir: "
                + dir.resolve("out") + "\n");
        CliRun.Result train = run("train", yaml.toString(), "--device", "cuda-emu:8");
        assertEquals(1, train.exitCode());
        assertTrue(train.err().startsWith("spin train: cannot open device cuda-emu:8: "), train.err());
        assertFalse(Files.exists(dir.resolve("out").resolve("metrics.jsonl")));
    }
}
