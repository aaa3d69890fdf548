package spin.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import spin.io.AtomicFilesFaults;
import spin.io.OutputLock;

/**
 * Crashes the checkpoint writer at every stage, then resumes: the run must end with the files of
 * an uninterrupted run (model, optimizer state, metrics, the same directory listing), and no crash
 * may leave a visible checkpoint that is incomplete. A crash is a {@link Kill}, an Error that skips
 * the writers' clean-up as kill -9 would; a full disk is an IOException, which must be reported
 * with the step and the path and clean up after itself.
 */
class CheckpointFaultsTest {

    @TempDir
    static Path shared;
    private static Path model, data, straight;

    @TempDir
    Path dir;

    /** What kill -9 does to the code: it stops, and no catch block cleans up. */
    static final class Kill extends Error {
        Kill(String where) {
            super("killed " + where);
        }
    }

    private static Map<String, Object> settings(Path out) {
        Map<String, Object> s = new HashMap<>();
        s.put("model_name_or_path", model.toString());
        s.put("dataset_mixer", Map.of(data.toString(), 1.0));
        s.put("output_dir", out.toString());
        s.put("learning_rate", 1e-3);
        s.put("optim", "adamw");
        s.put("per_device_train_batch_size", 4);
        s.put("max_steps", 6);
        s.put("logging_steps", 1);
        s.put("save_strategy", "steps");
        s.put("save_steps", 2);
        s.put("save_total_limit", 1);
        s.put("max_length", 64);
        s.put("max_prompt_length", 32);
        s.put("bf16", true); // checkpoints then carry fp32 master weights in optimizer.safetensors
        s.put("threads", 2);
        return s;
    }

    private static Trainer.Result train(Path out, boolean resume) throws IOException {
        return Trainer.run(TrainConfig.of(settings(out)), Trainer.Mode.SPIN, resume, new PrintWriter(new StringWriter()));
    }

    @BeforeAll
    static void uninterruptedRun() throws IOException {
        model = TinyTrainingData.model(shared.resolve("model"));
        data = TinyTrainingData.reversals(shared.resolve("data"));
        straight = shared.resolve("straight");
        train(straight, false);
    }

    @AfterEach
    void clearFaults() {
        AtomicFilesFaults.clear();
        TrainingCheckpoints.hook = (stage, d) -> {};
    }

    /** A point to crash at: where the writer is, as the hooks see it. */
    record Fault(String name, boolean atomicWrite, String stage, String path) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<Fault> faults() {
        return List.of(
                new Fault("inside the hidden checkpoint dir, before any file", false, "staged", ".checkpoint-4.partial"),
                new Fault("mid model write", true, null, ".checkpoint-4.partial/model.safetensors"),
                new Fault("mid config write", true, null, ".checkpoint-4.partial/config.json"),
                new Fault("mid tokenizer copy", true, null, ".checkpoint-4.partial/tokenizer.json"),
                new Fault("mid optimizer write", true, null, ".checkpoint-4.partial/optimizer.safetensors"),
                new Fault("mid trainer state write", true, null, ".checkpoint-4.partial/trainer_state.json"),
                new Fault("after the rename, before rotation", false, "renamed", "checkpoint-4"),
                new Fault("after the last checkpoint's rename, before rotation", false, "renamed", "checkpoint-6"),
                new Fault("during rotation, mid delete", false, "set-aside", ".checkpoint-2.deleting"),
                new Fault("mid metrics truncation on resume", true, null, "metrics.jsonl"),
                new Fault("mid final model write", true, null, "model.safetensors"),
                new Fault("mid final tokenizer write", true, null, "tokenizer_config.json"),
                new Fault("mid train_results write", true, null, Trainer.RESULTS_FILE));
    }

    private void inject(Path out, Fault fault, boolean kill) {
        Path where = out.resolve(fault.path());
        if (fault.atomicWrite()) {
            AtomicFilesFaults.set((target, temp) -> {
                if (target.equals(where)) {
                    // half the bytes reached the disk
                    try (RandomAccessFile f = new RandomAccessFile(temp.toFile(), "rw")) {
                        f.setLength(f.length() / 2);
                    }
                    if (kill) {
                        throw new Kill(fault.name());
                    }
                    throw new IOException("No space left on device");
                }
            });
        } else {
            TrainingCheckpoints.hook = (stage, d) -> {
                if (stage.equals(fault.stage()) && d.equals(where)) {
                    if (stage.equals("set-aside")) { // the delete got this far
                        Files.delete(d.resolve(TrainingCheckpoints.STATE_FILE));
                        Files.delete(d.resolve("model.safetensors"));
                    }
                    throw new Kill(fault.name());
                }
            };
        }
    }

    @ParameterizedTest(name = "killed {0}")
    @MethodSource("faults")
    void aKilledSaveResumesToTheUninterruptedEnd(Fault fault) throws IOException {
        Path out = dir.resolve("out");
        if (fault.path().equals("metrics.jsonl")) {
            // the truncation only happens on resume: crash the run first (after checkpoint-4), then the resume mid-truncation
            inject(out, new Fault("", false, "renamed", "checkpoint-4"), true);
            assertThrows(Kill.class, () -> train(out, false));
            clearFaults();
            inject(out, fault, true);
            assertThrows(Kill.class, () -> train(out, true));
        } else {
            inject(out, fault, true);
            assertThrows(Kill.class, () -> train(out, false));
        }
        clearFaults();
        assertEveryVisibleCheckpointIsComplete(out);
        assertFalse(Files.exists(out.resolve(Trainer.RESULTS_FILE)), "the run is not marked finished");
        train(out, true);
        assertSameEnd(out);
    }

    @Test
    void aFullDiskDuringASaveNamesTheStepAndThePathRemovesThePartialAndResumesExactly() throws IOException {
        Path out = dir.resolve("full");
        inject(out, new Fault("disk full", true, null, ".checkpoint-4.partial/optimizer.safetensors"), false);
        IOException e = assertThrows(IOException.class, () -> train(out, false));
        String message = e.getMessage();
        assertTrue(message.startsWith("step 4: cannot write " + out.resolve(".checkpoint-4.partial/optimizer.safetensors")
                + ": No space left on device; checkpoint-2 is intact"), message);
        clearFaults();
        assertEquals(new TreeSet<>(List.of(OutputLock.FILE_NAME, "checkpoint-2", "metrics.jsonl")), listing(out),
                "the partial checkpoint and its temporary files are removed");
        assertEquals(List.of(out.resolve("checkpoint-2")), new TrainingCheckpoints(out).list());
        train(out, true);
        assertSameEnd(out);
    }

    @Test
    void aFullDiskDuringTheFinalWriteNamesThePath() throws IOException {
        Path out = dir.resolve("full-final");
        inject(out, new Fault("disk full", true, null, "model.safetensors"), false);
        IOException e = assertThrows(IOException.class, () -> train(out, false));
        assertTrue(e.getMessage().startsWith("after the last step (6), writing the final model: cannot write "
                + out.resolve("model.safetensors") + ": No space left on device; checkpoint-6 is intact"), e.getMessage());
        clearFaults();
        assertTrue(listing(out).stream().noneMatch(n -> n.startsWith(".") && !n.equals(OutputLock.FILE_NAME)), listing(out).toString());
        train(out, true);
        assertSameEnd(out);
    }

    /**
     * A delete of today's kind cut short (trainer_state.json gone first, the rest still there) left a
     * visible checkpoint that was skipped forever; the next rotation removes it.
     */
    @Test
    void rotationRemovesAnIncompleteCheckpointADeleteLeftBehind() throws IOException {
        Path out = dir.resolve("half-deleted");
        inject(out, new Fault("", false, "renamed", "checkpoint-4"), true);
        assertThrows(Kill.class, () -> train(out, false));
        clearFaults();
        // checkpoint-2 as an old-style rotation killed mid-delete leaves it
        Files.delete(out.resolve("checkpoint-2").resolve(TrainingCheckpoints.STATE_FILE));
        train(out, true);
        assertSameEnd(out);
    }

    @Test
    void leftoverTemporaryFilesAreSweptOnStartAndUserFilesAreNot() throws IOException {
        Path out = dir.resolve("leftovers");
        Files.createDirectories(out.resolve(".checkpoint-2.partial"));
        Files.writeString(out.resolve(".checkpoint-2.partial/model.safetensors"), "half");
        Files.createDirectories(out.resolve(".checkpoint-8.deleting"));
        for (String name : new String[] {".model.safetensors.4321.partial", ".metrics.jsonl.77.partial",
                ".model-00001-of-00002.safetensors.5.partial", ".train_results.json.6.partial", ".tokenizer.json.8.partial"}) {
            Files.writeString(out.resolve(name), "leftover of a killed write");
        }
        List<String> users = List.of("notes.txt", ".notes.txt.1.partial", "checkpoint-notes", ".checkpoint-x.partial");
        for (String name : users) {
            Files.writeString(out.resolve(name), "the user's");
        }
        train(out, false);
        TreeSet<String> expected = listing(straight);
        expected.addAll(users);
        assertEquals(expected, listing(out));
    }

    /** Every directory named checkpoint-STEP has its trainer_state.json: the resume point is always a good checkpoint. */
    private static void assertEveryVisibleCheckpointIsComplete(Path out) throws IOException {
        try (Stream<Path> entries = Files.list(out)) {
            for (Path p : entries.filter(p -> p.getFileName().toString().startsWith("checkpoint-")).toList()) {
                assertTrue(Files.isRegularFile(p.resolve(TrainingCheckpoints.STATE_FILE)), p + " is visible but incomplete");
            }
        }
    }

    /** The same files as the uninterrupted run, byte for byte, and metrics equal up to wall-clock throughput. */
    private static void assertSameEnd(Path out) throws IOException {
        assertEquals(listing(straight), listing(out), "same files, no leftovers");
        assertEquals(listing(straight.resolve("checkpoint-6")), listing(out.resolve("checkpoint-6")));
        for (String file : new String[] {"model.safetensors", "config.json", "tokenizer.json", "checkpoint-6/model.safetensors",
                "checkpoint-6/optimizer.safetensors", "checkpoint-6/config.json"}) {
            assertArrayEquals(Files.readAllBytes(straight.resolve(file)), Files.readAllBytes(out.resolve(file)), file);
        }
        List<JsonNode> a = metrics(straight), b = metrics(out);
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            assertEquals(deterministic(a.get(i)), deterministic(b.get(i)), "metrics line " + i);
        }
        JsonNode state = TrainingCheckpoints.readState(out.resolve("checkpoint-6"));
        assertEquals(6, state.get("global_step").asLong());
    }

    private static TreeSet<String> listing(Path dir) throws IOException {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.map(p -> p.getFileName().toString()).collect(java.util.stream.Collectors.toCollection(TreeSet::new));
        }
    }

    private static List<JsonNode> metrics(Path out) throws IOException {
        return TinyTrainingData.metrics(out);
    }

    private static JsonNode deterministic(JsonNode line) {
        return TinyTrainingData.withoutWallClock(line);
    }
}
