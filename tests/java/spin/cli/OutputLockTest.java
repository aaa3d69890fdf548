package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.cli.CliRun.run;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.ChildJvm;
import spin.data.GenerationShards;
import spin.io.HoldOutputLock;
import spin.io.OutputLock;
import spin.train.TinyTrainingData;

/**
 * One command per output directory, across real processes: a second JVM holds the directory (a
 * real spin train, or a process that only holds the lock), this one must be refused at once, and
 * after the holder is killed with SIGKILL the directory is usable again, whatever file it left.
 */
class OutputLockTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path shared;
    private static Path model, data;

    @TempDir
    Path dir;

    private final List<Process> children = new ArrayList<>();

    @BeforeAll
    static void writeModelAndData() throws IOException {
        model = TinyTrainingData.model(shared.resolve("model"));
        data = TinyTrainingData.reversals(shared.resolve("data"));
    }

    @AfterEach
    void killChildren() throws InterruptedException {
        for (Process p : children) {
            p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
    }

    private Process start(List<String> command, Path log) throws IOException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        children.add(p);
        return p;
    }

    @Test
    void aSecondTrainOnADirectoryInUseIsRefusedAtOnceAndAKilledRunDoesNotBlockTheNext() throws Exception {
        Path out = dir.resolve("out");
        Path yaml = dir.resolve("config.yaml");
        Files.writeString(yaml, "model_name_or_path: " + model + "\ndataset_mixer:\n  " + data + ": 1.0\n"
                + "output_dir: " + out + "\nper_device_train_batch_size: 8\nmax_length: 64\nmax_prompt_length: 32\n"
                + "max_steps: 1000000\nlogging_steps: 1\nsave_strategy: \"no\"\nthreads: 1\n");
        Process first = start(ChildJvm.command(Main.class, "train", yaml.toString()), dir.resolve("first.log"));
        Path metrics = out.resolve("metrics.jsonl");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!(Files.exists(metrics) && Files.size(metrics) > 0)) {
            assertTrue(first.isAlive(), () -> "the first run ended: " + read(dir.resolve("first.log")));
            assertTrue(System.nanoTime() < deadline, "the first run logged no step in 120 s");
            Thread.sleep(50);
        }

        // each would end after one step if it were let in, rather than run beside the first
        for (String[] args : new String[][] {{"train", yaml.toString(), "--max_steps=1"}, {"train", yaml.toString(), "--resume",
            "--max_steps=1"}, {"sft", yaml.toString(), "--max_steps=1"}}) {
            CliRun.Result second = run(args);
            assertEquals(1, second.exitCode(), second.err());
            assertTrue(second.err().startsWith("spin " + args[0] + ": output_dir " + out + " is in use by another spin process (pid "
                    + first.pid() + ", spin train, since "), second.err());
            assertFalse(second.err().contains("scoring"), "refused before loading anything: " + second.err());
            assertEquals(1, second.err().strip().lines().count(), second.err());
        }
        assertTrue(first.isAlive(), "the first run was not disturbed");

        first.destroyForcibly(); // SIGKILL: no shutdown hook, no clean-up
        assertTrue(first.waitFor(30, TimeUnit.SECONDS));
        assertTrue(Files.exists(out.resolve(OutputLock.FILE_NAME)), "kill -9 leaves the lock file behind");
        long previous = 0;
        for (String line : Files.readAllLines(metrics)) {
            if (!line.isBlank() && line.endsWith("}")) { // the kill may have torn the last line
                long step = JSON.readTree(line).get("step").asLong();
                assertTrue(step > previous, "one writer: steps logged once each, in order: " + step + " after " + previous);
                previous = step;
            }
        }

        CliRun.Result next = run("train", yaml.toString(), "--max_steps=2");
        assertEquals(0, next.exitCode(), next.err());
        assertEquals(2, Files.readAllLines(metrics).size());
    }

    @Test
    void generateOnADirectoryInUseIsRefusedAtOnceAndUsableOnceTheHolderIsKilled() throws Exception {
        Path out = dir.resolve("generated");
        Process holder = new ProcessBuilder(ChildJvm.command(HoldOutputLock.class, out.toString())).redirectErrorStream(true).start();
        children.add(holder);
        BufferedReader said = new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
        StringBuilder before = new StringBuilder();
        for (String line = said.readLine(); !"locked".equals(line); line = said.readLine()) {
            assertTrue(line != null, "the holder ended without locking: " + before);
            before.append(line).append('\n'); // the JVM's incubator-module warning
        }
        String[] generate = {"generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir", out.toString(),
            "--max-new-tokens", "3", "--threads", "1"};
        CliRun.Result refused = run(generate);
        assertEquals(1, refused.exitCode(), refused.err());
        assertTrue(refused.err().startsWith("spin generate: --output-dir " + out + " is in use by another spin process (pid "
                + holder.pid() + ", lock holder, since "), refused.err());
        Path shard = out.resolve(GenerationShards.fileName(0, false));
        assertFalse(Files.exists(shard));

        holder.destroyForcibly();
        assertTrue(holder.waitFor(30, TimeUnit.SECONDS));
        CliRun.Result ran = run(generate);
        assertEquals(0, ran.exitCode(), ran.err());
        assertTrue(Files.isRegularFile(shard));
    }

    private static String read(Path log) {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }
}
