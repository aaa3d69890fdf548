package spin.cli;

import static spin.cli.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.data.ParquetFixtures;
import spin.data.SpinDatasetWriter;
import spin.data.SpinDatasets;
import spin.data.SpinRecord;
import spin.model.MistralConfig;
import spin.model.ModelCheckpoint;
import spin.text.ChatMessage;
import spin.text.DemoTokenizer;
import spin.text.Tokenizer;

/** reformat, convert, score and init-model's tokenizer through the real command line, on files made here. */
class DataCommandsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static SpinRecord record(String q, String real, String generated) {
        return new SpinRecord(List.of(ChatMessage.user(q), ChatMessage.assistant(real)),
                List.of(ChatMessage.user(q), ChatMessage.assistant(generated)));
    }

    @Test
    void reformatThenConvertMakeTheNextIterationsData() throws IOException {
        Path ultrachat = dir.resolve("ultrachat");
        ParquetFixtures.ultrachat(ultrachat.resolve("data/train_sft-00000-of-00001.parquet"), List.of(
                List.of(new String[] {"user", "What is 2 + 3?"}, new String[] {"assistant", "5"}),
                List.of(new String[] {"user", "Name a colour."}, new String[] {"assistant", "Blue."})));
        ParquetFixtures.ultrachat(ultrachat.resolve("data/test_sft-00000-of-00001.parquet"), List.of(
                List.of(new String[] {"user", "Hi"}, new String[] {"assistant", "Hello!"})));
        CliRun.Result reformat = run("reformat", "--data", ultrachat.toString(), "--output-dir", dir.resolve("iter0").toString());
        assertEquals(0, reformat.exitCode(), reformat.err());
        assertEquals("Wrote 2 train and 1 test records to " + dir.resolve("iter0") + "\n", reformat.out());
        assertEquals(List.of(record("What is 2 + 3?", "5", ""), record("Name a colour.", "Blue.", "")),
                SpinDatasets.load(dir.resolve("iter0"), "train", false).values());

        Path generated = dir.resolve("generated");
        SpinDatasetWriter.write(generated.resolve("loser_0.jsonl"), List.of(record("What is 2 + 3?", "5", " Six.")));
        SpinDatasetWriter.write(generated.resolve("loser_1.jsonl"), List.of(record("Name a colour.", "Blue.", "\n Red.")));
        SpinDatasetWriter.write(generated.resolve("loser_0_test.jsonl"), List.of(record("Hi", "Hello!", " Hey.")));
        CliRun.Result convert = run("convert", "--input-dir", generated.toString(), "--output-dir", dir.resolve("iter1").toString(),
                "--num-fracs", "2");
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals(List.of(record("What is 2 + 3?", "5", "Six."), record("Name a colour.", "Blue.", "Red.")),
                SpinDatasets.load(dir.resolve("iter1"), "train", false).values());
        assertEquals(List.of(record("Hi", "Hello!", "Hey.")), SpinDatasets.load(dir.resolve("iter1"), "test", false).values());
    }

    @Test
    void badRowsAndMissingShardsAreOneLineErrors() throws IOException {
        Path data = dir.resolve("sft");
        Files.createDirectories(data);
        Files.writeString(data.resolve("train_sft.jsonl"), "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, "
                + "{\"role\": \"assistant\", \"content\": \"a\"}]}\n{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}\n");
        Files.writeString(data.resolve("test_sft.jsonl"), "");
        CliRun.Result bad = run("reformat", "--data", data.toString(), "--output-dir", dir.resolve("out").toString());
        assertEquals(1, bad.exitCode());
        assertEquals("spin reformat: " + data.resolve("train_sft.jsonl") + ", line 2: messages[0].content must be a string, "
                + "got an array ([1]); fix the row, or pass --skip-invalid to skip invalid rows\n", bad.err());
        CliRun.Result skipped = run("reformat", "--data", data.toString(), "--output-dir", dir.resolve("out").toString(), "--skip-invalid");
        assertEquals(0, skipped.exitCode(), skipped.err());
        assertTrue(skipped.out().contains("Wrote 1 train and 0 test records")
                && skipped.out().contains("Skipped 1 invalid row; the first: " + data.resolve("train_sft.jsonl") + ", line 2:"), skipped.out());

        Files.createDirectories(dir.resolve("gen"));
        SpinDatasetWriter.write(dir.resolve("gen/loser_1.jsonl"), List.of(record("q", "a", "g")));
        SpinDatasetWriter.write(dir.resolve("gen/loser_0_test.jsonl"), List.of(record("q", "a", "g")));
        CliRun.Result missing = run("convert", "--input-dir", dir.resolve("gen").toString(), "--output-dir", dir.resolve("o").toString());
        assertEquals(1, missing.exitCode());
        assertEquals("spin convert: " + dir.resolve("gen") + ": missing generation shards loser_0.jsonl; generate those fractions\n", missing.err());
    }

    @Test
    void scoreWritesPerRecordLogProbsAndTheTokensItUsed() throws IOException {
        Path model = dir.resolve("tiny");
        CliRun.Result init = run("init-model", "--preset", "tiny", "--out", model.toString(), "--dtype", "f32");
        assertEquals(0, init.exitCode(), init.err());
        assertTrue(init.out().contains("Wrote the demo tokenizer (512 tokens, zephyr chat template)"), init.out());
        try (Tokenizer tokenizer = Tokenizer.load(model)) {
            assertEquals(512, tokenizer.vocabSize());
        }
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, SpinDatasetWriter.toJson(record("What is 2 + 3?", "5", "Six.")) + "\n"
                + "{\"real\": []}\n" + SpinDatasetWriter.toJson(record("Hi", "Hello! How can I help?", "")) + "\n");
        Path scores = dir.resolve("scores.jsonl"), tokens = dir.resolve("tokens.jsonl");
        CliRun.Result score = run("score", "--model", model.toString(), "--data", data.toString(), "--out", scores.toString(),
                "--dump-tokens", tokens.toString(), "--batch-size", "1", "--skip-invalid", "--threads", "2");
        assertEquals(0, score.exitCode(), score.err());
        assertTrue(score.out().startsWith("Scored 2 records under " + model + " into " + scores), score.out());
        assertTrue(score.out().contains("Skipped 1 invalid row; the first: " + data + ", line 2: real has 0 message(s)"), score.out());
        List<String> lines = Files.readAllLines(scores);
        assertEquals(2, lines.size());
        JsonNode first = JSON.readTree(lines.get(0)), second = JSON.readTree(lines.get(1));
        assertEquals(0, first.get("index").asInt());
        assertEquals(2, second.get("index").asInt(), "indices count the skipped row");
        assertTrue(first.get("real_logp").asDouble() < 0 && first.get("generated_logp").asDouble() < 0, lines.get(0));

        JsonNode dumped = JSON.readTree(Files.readAllLines(tokens).get(1));
        assertEquals(2, dumped.get("index").asInt());
        int promptLength = dumped.get("prompt_length").asInt();
        JsonNode generated = dumped.get("generated");
        assertEquals(promptLength + 4, generated.get("input_ids").size(), "empty answer: </s>, legacy ▁, \\n, appended EOS");
        assertEquals(-100, generated.get("labels").get(promptLength - 1).asInt());
        assertEquals(2, generated.get("labels").get(promptLength + 3).asInt());
        assertEquals(0, generated.get("attention_mask").get(promptLength).asInt(), "the template's </s> is masked");

        // Scoring in one batch of two (padded) gives the same numbers, printed to standard output.
        CliRun.Result together = run("score", "--model", model.toString(), "--data", data.toString(), "--skip-invalid", "--threads", "2");
        assertEquals(0, together.exitCode(), together.err());
        String[] batched = together.out().split("\n");
        assertEquals(2, batched.length, together.out());
        assertTrue(together.err().startsWith("Scored 2 records"), together.err());
        for (int i = 0; i < 2; i++) {
            JsonNode alone = JSON.readTree(lines.get(i)), padded = JSON.readTree(batched[i]);
            assertArrayEquals(new double[] {alone.get("real_logp").asDouble(), alone.get("generated_logp").asDouble()},
                    new double[] {padded.get("real_logp").asDouble(), padded.get("generated_logp").asDouble()}, 1e-3);
        }
    }

    @Test
    void scoreRefusesATokenizerBiggerThanTheModelAndBadLimits() throws IOException {
        Path model = dir.resolve("tiny");
        assertEquals(0, run("init-model", "--preset", "tiny", "--out", model.toString()).exitCode());
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, SpinDatasetWriter.toJson(record("q", "a", "g")) + "\n");
        CliRun.Result limits = run("score", "--model", model.toString(), "--data", data.toString(), "--max-length", "256", "--max-prompt-length", "256");
        assertEquals(1, limits.exitCode());
        assertEquals("spin score: need 0 < max_prompt_length < max_length, got max_prompt_length 256 and max_length 256\n", limits.err());
        Path narrow = dir.resolve("narrow");
        MistralConfig t = MistralConfig.tiny();
        MistralConfig vocab300 = new MistralConfig(300, t.hiddenSize(), t.intermediateSize(), t.numHiddenLayers(), t.numAttentionHeads(),
                t.numKeyValueHeads(), t.headDim(), t.maxPositionEmbeddings(), t.rmsNormEps(), t.ropeTheta(), t.slidingWindow(),
                t.tieWordEmbeddings(), t.initializerRange(), t.bosTokenId(), t.eosTokenId());
        ModelCheckpoint.writeInitialized(vocab300, narrow, ModelCheckpoint.StorageType.BF16, 1, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        DemoTokenizer.write(narrow, DemoTokenizer.DEFAULT_VOCAB_SIZE, 2048);
        CliRun.Result small = run("score", "--model", narrow.toString(), "--data", data.toString());
        assertEquals(1, small.exitCode());
        assertEquals("spin score: " + narrow + ": the tokenizer has 512 tokens but config.json's vocab_size is 300; "
                + "use the tokenizer the model was trained with\n", small.err());
        Files.delete(model.resolve(Tokenizer.FILE_NAME));
        CliRun.Result noTokenizer = run("score", "--model", model.toString(), "--data", data.toString());
        assertEquals(1, noTokenizer.exitCode());
        assertTrue(noTokenizer.err().startsWith("spin score: no such file or directory: " + model.resolve(Tokenizer.FILE_NAME)), noTokenizer.err());
    }
}
