package spin.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.text.Tokenizer;

/** The training loop end to end on a tiny model: resume, accumulation, divergence, SFT, evaluation. */
class TrainerTest {

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

    private Map<String, Object> settings(Path out) {
        Map<String, Object> s = new HashMap<>();
        s.put("model_name_or_path", model.toString());
        s.put("dataset_mixer", Map.of(data.toString(), 1.0));
        s.put("output_dir", out.toString());
        s.put("learning_rate", 1e-3);
        s.put("per_device_train_batch_size", 4);
        s.put("num_train_epochs", 2);
        s.put("logging_steps", 2);
        s.put("save_strategy", "no");
        s.put("max_length", 64);
        s.put("max_prompt_length", 32);
        s.put("bf16", false);
        s.put("threads", 2);
        return s;
    }

    private static Trainer.Result train(Map<String, Object> settings, Trainer.Mode mode, boolean resume) throws IOException {
        return Trainer.run(TrainConfig.of(settings), mode, resume, new PrintWriter(new StringWriter()));
    }

    private static List<JsonNode> metrics(Path out) throws IOException {
        return TinyTrainingData.metrics(out);
    }

    /** A metrics line without the wall-clock figure, which no two runs share. */
    private static JsonNode deterministic(JsonNode line) {
        return TinyTrainingData.withoutWallClock(line);
    }

    @Test
    void resumedRunEndsBitIdenticalToAnUninterruptedOne() throws IOException {
        Path straight = dir.resolve("straight"), resumed = dir.resolve("resumed");
        Map<String, Object> base = settings(straight);
        base.put("optim", "adamw");
        base.put("save_strategy", "steps");
        base.put("save_steps", 3);
        base.put("bf16", true); // checkpoints then carry fp32 master weights beside the bf16 model files
        train(base, Trainer.Mode.SPIN, false);

        // the resumed run: a crash after checkpoint-3 leaves that checkpoint, a metrics file that ran
        // ahead of it, a half-written save and a checkpoint directory without its state file
        Map<String, Object> second = new HashMap<>(base);
        second.put("output_dir", resumed.toString());
        Files.createDirectories(resumed);
        TinyTrainingData.copyTree(straight.resolve("checkpoint-3"), resumed.resolve("checkpoint-3"));
        Files.copy(straight.resolve(TrainingLog.FILE_NAME), resumed.resolve(TrainingLog.FILE_NAME));
        Files.createDirectories(resumed.resolve(".checkpoint-6.partial"));
        Files.writeString(resumed.resolve(".checkpoint-6.partial/model.safetensors"), "half");
        TinyTrainingData.copyTree(straight.resolve("checkpoint-6"), resumed.resolve("checkpoint-7"));
        Files.delete(resumed.resolve("checkpoint-7").resolve(TrainingCheckpoints.STATE_FILE));
        train(second, Trainer.Mode.SPIN, true);

        for (String file : new String[] {"model.safetensors", "checkpoint-6/optimizer.safetensors", "checkpoint-6/model.safetensors"}) {
            assertArrayEquals(Files.readAllBytes(straight.resolve(file)), Files.readAllBytes(resumed.resolve(file)), file);
        }
        List<JsonNode> a = metrics(straight), b = metrics(resumed);
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            assertEquals(deterministic(a.get(i)), deterministic(b.get(i)), "metrics line " + i);
        }
        assertFalse(Files.exists(resumed.resolve(".checkpoint-6.partial")), "the next save clears a half-written one");
        Map<String, float[]> start = TinyTrainingData.weights(model), end = TinyTrainingData.weights(straight);
        assertTrue(changed(start, end), "training moved the weights");
    }

    private static boolean changed(Map<String, float[]> a, Map<String, float[]> b) {
        for (String k : a.keySet()) {
            float[] x = a.get(k), y = b.get(k);
            for (int i = 0; i < x.length; i++) {
                if (x[i] != y[i]) {
                    return true;
                }
            }
        }
        return false;
    }

    @Test
    void accumulatingTwoBatchesOfFourEqualsOneBatchOfEight() throws IOException {
        Path small = dir.resolve("accumulated"), large = dir.resolve("large");
        Map<String, Object> a = settings(small);
        a.put("gradient_accumulation_steps", 2);
        a.put("warmup_ratio", 0.0);
        a.put("max_grad_norm", 0.0);
        Map<String, Object> b = new HashMap<>(a);
        b.put("output_dir", large.toString());
        b.put("gradient_accumulation_steps", 1);
        b.put("per_device_train_batch_size", 8);
        Trainer.Result ra = train(a, Trainer.Mode.SPIN, false), rb = train(b, Trainer.Mode.SPIN, false);
        assertEquals(4, ra.steps());
        assertEquals(ra.steps(), rb.steps());
        Map<String, float[]> start = TinyTrainingData.weights(model), x = TinyTrainingData.weights(small),
                y = TinyTrainingData.weights(large);
        double diff = 0, norm = 0;
        for (String k : start.keySet()) {
            for (int i = 0; i < start.get(k).length; i++) {
                double ux = x.get(k)[i] - start.get(k)[i], uy = y.get(k)[i] - start.get(k)[i];
                diff += (ux - uy) * (ux - uy);
                norm += uy * uy;
            }
        }
        assertTrue(norm > 0);
        assertTrue(Math.sqrt(diff / norm) < 1e-4, "updates differ by " + Math.sqrt(diff / norm));
        assertEquals(metrics(small).getLast().get("loss").asDouble(), metrics(large).getLast().get("loss").asDouble(), 1e-5);
    }

    @Test
    void aRunThatCannotFitTheDevicesMemoryIsRefusedBeforeAllocatingNamingWhatToLower() {
        Map<String, Object> s = settings(dir.resolve("huge"));
        s.put("max_length", 1 << 24); // 16 records of up to 16M tokens: terabytes of activations
        s.put("max_prompt_length", 1024);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> train(s, Trainer.Mode.SPIN, false));
        assertTrue(e.getMessage().contains("training needs about") && e.getMessage().contains("lower per_device_train_batch_size"),
                e.getMessage());
        assertFalse(Files.exists(dir.resolve("huge").resolve(TrainingLog.FILE_NAME)));
    }

    @Test
    void aNonFiniteLossStopsTrainingAndKeepsTheLastGoodCheckpoint() throws IOException {
        Path out = dir.resolve("diverged");
        Map<String, Object> s = settings(out);
        s.put("learning_rate", 1e30);
        s.put("warmup_ratio", 0.0);
        s.put("max_grad_norm", 0.0);
        s.put("optim", "adamw");
        s.put("save_strategy", "steps");
        s.put("save_steps", 1);
        TrainingDivergedException e = assertThrows(TrainingDivergedException.class, () -> train(s, Trainer.Mode.SPIN, false));
        assertTrue(e.getMessage().matches("step \\d+: the (SPIN loss|gradient norm) is (NaN|-?Infinity)"), e.getMessage());
        long failedStep = Long.parseLong(e.getMessage().replaceAll("step (\\d+):.*", "$1"));
        List<Path> kept = new TrainingCheckpoints(out).list();
        assertEquals(failedStep - 1, kept.size(), "every step before the failure was saved, and nothing after");
        assertFalse(Files.exists(out.resolve(Trainer.RESULTS_FILE)));
    }

    @Test
    void sftLowersTheCrossEntropyOfTheRealAnswers() throws IOException {
        Path out = dir.resolve("sft");
        Map<String, Object> s = settings(out);
        s.put("learning_rate", 3e-3);
        s.put("num_train_epochs", 3);
        s.put("evaluation_strategy", "epoch");
        s.put("per_device_eval_batch_size", 8);
        train(s, Trainer.Mode.SFT, false);
        List<JsonNode> evals = metrics(out).stream().filter(n -> n.has("eval_loss")).toList();
        assertEquals(3, evals.size());
        assertTrue(evals.getLast().get("eval_loss").asDouble() < evals.getFirst().get("eval_loss").asDouble() - 0.1,
                "eval loss " + evals);
        assertTrue(Files.exists(out.resolve(Trainer.RESULTS_FILE)));
        assertTrue(Files.exists(out.resolve(Tokenizer.FILE_NAME)), "the final model directory carries the tokenizer");
    }

    @Test
    void spinLogsTheReferenceMetricsAndRefusesToOverwriteARun() throws IOException {
        Path out = dir.resolve("spin");
        Map<String, Object> s = settings(out);
        s.put("do_eval", true);
        s.put("eval_steps", 4);
        train(s, Trainer.Mode.SPIN, false);
        List<JsonNode> lines = metrics(out);
        JsonNode first = lines.getFirst();
        for (String key : new String[] {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second", "rewards/real",
                "rewards/generated", "rewards/accuracies", "rewards/margins", "logps/real", "logps/generated", "logits/real",
                "logits/generated"}) {
            assertTrue(first.has(key), key + " in " + first);
        }
        assertEquals(2, lines.stream().filter(n -> n.has("eval_rewards/margins")).count());
        JsonNode firstEval = lines.stream().filter(n -> n.has("eval_loss")).findFirst().orElseThrow();
        assertTrue(firstEval.get("eval_rewards/margins").asDouble() != 0);
        IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> train(s, Trainer.Mode.SPIN, false));
        assertTrue(again.getMessage().contains("already holds a finished run"), again.getMessage());
    }

    @Test
    void theFirstStepAtLearningRateZeroSeesPolicyEqualToOpponent() throws IOException {
        Path out = dir.resolve("first");
        Map<String, Object> s = settings(out);
        s.put("logging_steps", 1);
        s.put("max_steps", 2);
        train(s, Trainer.Mode.SPIN, false);
        // 8 steps planned (2 epochs of 4) cut to 2 by max_steps: warmup ceil(0.1 * 2) = 1, so the first step runs at
        // lr 0, and the opponent being the starting model, policy and opponent agree: the loss is log 2
        JsonNode first = metrics(out).getFirst();
        assertEquals(0.0, first.get("learning_rate").asDouble(), "HF's warmup runs the first step at lr 0");
        assertEquals(1e-3, metrics(out).get(1).get("learning_rate").asDouble(), 1e-12);
        assertEquals(Math.log(2), first.get("loss").asDouble(), 1e-6);
        assertEquals(0.0, first.get("rewards/margins").asDouble(), 1e-6);
    }

    /** A frozen opponent scoring each batch gives the run precomputed log-probs give, up to float rounding of batch shapes. */
    @Test
    void aFrozenOpponentCopyMatchesPrecomputedLogProbs() throws IOException {
        Path precomputed = dir.resolve("precomputed"), frozen = dir.resolve("frozen");
        Map<String, Object> a = settings(precomputed);
        a.put("max_steps", 3);
        Map<String, Object> b = new HashMap<>(a);
        b.put("output_dir", frozen.toString());
        b.put("precompute_opponent", false);
        train(a, Trainer.Mode.SPIN, false);
        train(b, Trainer.Mode.SPIN, false);
        List<JsonNode> x = metrics(precomputed), y = metrics(frozen);
        assertEquals(x.size(), y.size());
        for (int i = 0; i < x.size(); i++) {
            for (String key : new String[] {"loss", "rewards/margins", "rewards/real", "logps/generated"}) {
                assertEquals(x.get(i).get(key).asDouble(), y.get(i).get(key).asDouble(), 1e-4, key + " at line " + i);
            }
        }
    }

    @Test
    void saveTotalLimitKeepsTheNewestCheckpoints() throws IOException {
        Path out = dir.resolve("limited");
        Map<String, Object> s = settings(out);
        s.put("max_steps", 4);
        s.put("save_strategy", "steps");
        s.put("save_steps", 1);
        s.put("save_total_limit", 2);
        train(s, Trainer.Mode.SFT, false);
        assertEquals(List.of("checkpoint-3", "checkpoint-4"),
                new TrainingCheckpoints(out).list().stream().map(p -> p.getFileName().toString()).toList());
        JsonNode state = TrainingCheckpoints.readState(out.resolve("checkpoint-4"));
        assertEquals(4, state.get("global_step").asLong());
        assertEquals("SFT", state.get("mode").asText());
    }
}
