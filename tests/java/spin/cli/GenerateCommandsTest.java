package spin.cli;

import static spin.cli.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.data.NumpyPermutation;
import spin.data.SpinDatasetWriter;
import spin.data.SpinDatasets;
import spin.data.SpinRecord;
import spin.io.OutputLock;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.text.ChatMessage;
import spin.text.TestTokenizer;
import spin.text.Tokenizer;
import spin.text.TokenizerConfig;

/** generate, chat and bench generate through the real command line on a tiny random model and the demo tokenizer. */
class GenerateCommandsTest {
    private static final String[] QUESTIONS = {"What is the capital of France?", "Write a haiku about the sea.",
        "How do I sort a list?", "Explain photosynthesis briefly.", "Name three primary colours.", "What is 2 + 2?",
        "Tell me a joke.", "Translate hello to Spanish.", "Why is the sky blue?", "Give me a synonym for happy."};
    private static final int NEW_TOKENS = 10;

    @TempDir
    static Path shared;
    private static Path model;
    private static Path data;

    @TempDir
    Path dir;

    /** The tiny preset's shapes with a wider initialisation, so that answers vary from token to token. */
    @BeforeAll
    static void writeModelAndData() throws IOException {
        model = shared.resolve("tiny");
        MistralConfig tiny = MistralConfig.tiny();
        MistralConfig config = new MistralConfig(tiny.vocabSize(), tiny.hiddenSize(), tiny.intermediateSize(), tiny.numHiddenLayers(),
                tiny.numAttentionHeads(), tiny.numKeyValueHeads(), tiny.headDim(), tiny.maxPositionEmbeddings(), tiny.rmsNormEps(),
                tiny.ropeTheta(), tiny.slidingWindow(), false, 0.3f, tiny.bosTokenId(), tiny.eosTokenId());
        ModelCheckpoint.writeInitialized(config, model, ModelCheckpoint.StorageType.F32, 5, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        for (String file : new String[] {Tokenizer.FILE_NAME, TokenizerConfig.FILE_NAME}) {
            Files.copy(TestTokenizer.directory().resolve(file), model.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        }
        data = shared.resolve("iter0");
        List<SpinRecord> train = new ArrayList<>(), test = new ArrayList<>();
        for (int i = 0; i < QUESTIONS.length; i++) {
            (i < 4 ? test : train).add(record(QUESTIONS[i], "Gold " + i));
        }
        train.addAll(test);
        SpinDatasetWriter.write(data.resolve("train_prefs-00000-of-00001.parquet"), train);
        SpinDatasetWriter.write(data.resolve("test_prefs-00000-of-00001.parquet"), test);
    }

    private static SpinRecord record(String question, String answer) {
        return new SpinRecord(List.of(ChatMessage.user(question), ChatMessage.assistant(answer)),
                List.of(ChatMessage.user(question), ChatMessage.assistant("")));
    }

    /**
     * The reference's answer computed without the engine: greedy argmax of the full forward over
     * "### Instruction: q\n\n### Response: " and the tokens so far, up to EOS or NEW_TOKENS tokens,
     * decoded with special tokens, "</s>" removed, left-stripped.
     */
    private static String referenceAnswer(String question) throws IOException {
        try (Tokenizer tokenizer = Tokenizer.load(model); CpuBackend cpu = new CpuBackend(1);
                MistralModel m = ModelCheckpoint.load(model, cpu)) {
            int[] ids = tokenizer.encode("### Instruction: " + question + "\n\n### Response: ");
            int prompt = ids.length, v = m.config().vocabSize();
            while (ids.length - prompt < NEW_TOKENS && (ids.length == prompt || ids[ids.length - 1] != tokenizer.eosId())) {
                int t = ids.length;
                int[] mask = new int[t], targets = new int[t];
                Arrays.fill(mask, 1);
                Arrays.fill(targets, Backend.IGNORE_INDEX);
                try (Tensor idT = cpu.fromHost(ids, 1, t); Tensor maskT = cpu.fromHost(mask, 1, t);
                        Tensor targetT = cpu.fromHost(targets, 1, t); MistralModel.ForwardState s = m.forward(idT, maskT, targetT)) {
                    float[] logits = Arrays.copyOfRange(cpu.read(s.logits()), (t - 1) * v, t * v);
                    int best = 0;
                    for (int k = 1; k < v; k++) {
                        best = logits[k] > logits[best] ? k : best;
                    }
                    ids = Arrays.copyOf(ids, t + 1);
                    ids[t] = best;
                }
            }
            String text = tokenizer.decode(Arrays.copyOfRange(ids, prompt, ids.length), false).replace("</s>", "");
            int start = 0;
            while (start < text.length() && Character.isWhitespace(text.charAt(start))) {
                start++;
            }
            return text.substring(start);
        }
    }

    private static List<SpinRecord> shard(Path file) throws IOException {
        return SpinDatasets.load(file, "train", false).values();
    }

    @Test
    void generatesAFractionEndToEndAndReRunsReplaceIt() throws IOException {
        Path out = dir.resolve("generated");
        String[] args = {"generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir", out.toString(),
            "--frac-len", "4", "--data-frac", "1", "--max-new-tokens", String.valueOf(NEW_TOKENS), "--batch-size", "3",
            "--threads", "1"};
        CliRun.Result first = run(args);
        assertEquals(0, first.exitCode(), first.err());
        Path file = out.resolve("loser_1.jsonl");
        assertTrue(first.out().startsWith(file + ": 4 answers, "), first.out());
        assertTrue(first.err().contains("loser_1.jsonl [########################] 4/4 prompts"), first.err());
        // Fraction 1 of 4 is rows 4..7 of the data in the reference's seed-42 order.
        int[] order = NumpyPermutation.permutation(10, 42);
        List<SpinRecord> written = shard(file);
        assertEquals(4, written.size());
        List<SpinRecord> train = SpinDatasets.load(data, "train", false).values();
        for (int i = 0; i < 4; i++) {
            SpinRecord source = train.get(order[4 + i]);
            SpinRecord r = written.get(i);
            assertEquals(source.real(), r.real(), "record " + i);
            assertEquals(source.real().get(0), r.generated().get(0));
            String answer = r.generated().get(1).content();
            assertEquals(referenceAnswer(source.real().get(0).content()), answer, "record " + i);
            assertFalse(answer.contains("</s>") || !answer.isEmpty() && Character.isWhitespace(answer.charAt(0)), answer);
        }
        String text = Files.readString(file);

        CliRun.Result again = run(args);
        assertEquals(0, again.exitCode(), again.err());
        assertSameText(text, file, "a re-run must replace the shard, not append to it");

        String[] resume = Arrays.copyOf(args, args.length + 1);
        resume[args.length] = "--resume";
        CliRun.Result skipped = run(resume);
        assertEquals(0, skipped.exitCode(), skipped.err());
        assertEquals(file + ": complete (4 records), skipped\n", skipped.out());

        List<String> lines = Files.readAllLines(file);
        Files.write(file, lines.subList(0, 2));
        CliRun.Result redone = run(resume);
        assertEquals(0, redone.exitCode(), redone.err());
        assertTrue(redone.out().startsWith(file + ": holds 2 records, not 4; generating it again\n"), redone.out());
        assertSameText(text, file, "the resumed shard must be whole again");
    }

    private static void assertSameText(String expected, Path file, String message) throws IOException {
        assertEquals(expected, Files.readString(file), message);
    }

    @Test
    void aWholeIterationsShardsConvertIntoTheNextData() throws IOException {
        Path out = dir.resolve("generated");
        CliRun.Result train = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir", out.toString(),
                "--frac-len", "5", "--num-fracs", "2", "--max-new-tokens", "6", "--threads", "1");
        assertEquals(0, train.exitCode(), train.err());
        CliRun.Result test = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir", out.toString(),
                "--split", "test", "--max-new-tokens", "6", "--prompt-format", "chat", "--threads", "1");
        assertEquals(0, test.exitCode(), test.err());
        assertEquals(List.of(OutputLock.FILE_NAME, "loser_0.jsonl", "loser_0_test.jsonl", "loser_1.jsonl"),
                Files.list(out).map(p -> p.getFileName().toString()).sorted().toList(), "the shards, and the directory's lock file");
        CliRun.Result convert = run("convert", "--input-dir", out.toString(), "--output-dir", dir.resolve("iter1").toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals("Wrote 10 train and 4 test records to " + dir.resolve("iter1") + "\n", convert.out());
    }

    @Test
    void sampledAnswersDependOnTheSeedOnlyNotOnTheBatch() throws IOException {
        List<List<SpinRecord>> runs = new ArrayList<>();
        for (String[] flags : new String[][] {{"--seed", "5", "--batch-size", "4"}, {"--seed", "5", "--batch-size", "1"},
            {"--seed", "6", "--batch-size", "4"}}) {
            Path out = dir.resolve("sampled-" + runs.size());
            List<String> args = new ArrayList<>(List.of("generate", "--model", model.toString(), "--input-dir", data.toString(),
                    "--output-dir", out.toString(), "--max-new-tokens", "8", "--temperature", "1.0", "--top-p", "0.9",
                    "--threads", "1"));
            args.addAll(List.of(flags));
            CliRun.Result r = run(args.toArray(new String[0]));
            assertEquals(0, r.exitCode(), r.err());
            runs.add(shard(out.resolve("loser_0.jsonl")));
        }
        assertEquals(runs.get(0), runs.get(1));
        assertFalse(runs.get(0).equals(runs.get(2)), "another seed must sample other answers");
    }

    @Test
    void chatAnswersEachLineAsGenerateWould() throws IOException {
        InputStream stdin = System.in;
        try {
            System.setIn(new ByteArrayInputStream((QUESTIONS[0] + "\n\n" + QUESTIONS[5] + "\n").getBytes(StandardCharsets.UTF_8)));
            CliRun.Result r = run("chat", "--model", model.toString(), "--max-new-tokens", String.valueOf(NEW_TOKENS), "--threads", "1");
            assertEquals(0, r.exitCode(), r.err());
            assertEquals(referenceAnswer(QUESTIONS[0]) + "\n" + referenceAnswer(QUESTIONS[5]) + "\n", r.out());
        } finally {
            System.setIn(stdin);
        }
    }

    @Test
    void benchGenerateReportsPrefillAndDecodeThroughput() {
        CliRun.Result r = run("bench", "generate", "--preset", "tiny", "--batch", "2", "--prompt-len", "4", "--new-tokens", "3",
                "--iters", "1", "--warmup-seconds", "0", "--threads", "1");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("RESULT mode=generate preset=tiny batch=2 prompt_len=4 new_tokens=3 threads=1 prefill_tokens_per_s="),
                r.out());
    }

    @Test
    void badFlagsAndDataAreOneLineErrors() {
        CliRun.Result split = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir",
                dir.toString(), "--split", "dev");
        assertEquals(1, split.exitCode());
        assertEquals("spin generate: --split must be train or test, got \"dev\"\n", split.err());
        CliRun.Result fraction = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir",
                dir.toString(), "--frac-len", "4", "--data-frac", "3");
        assertEquals(1, fraction.exitCode());
        assertTrue(fraction.err().contains("fraction 3 of 4 rows starts at row 12 but the data has 10 rows; the last fraction is 2"),
                fraction.err());
        CliRun.Result budget = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir",
                dir.toString(), "--max-new-tokens", "4000");
        assertEquals(1, budget.exitCode());
        assertTrue(budget.err().contains("exceed the model's max_position_embeddings (2048)"), budget.err());
        CliRun.Result format = run("chat", "--model", model.toString(), "--prompt-format", "alpaca");
        assertEquals(1, format.exitCode());
        assertEquals("spin chat: unknown prompt format \"alpaca\"; use instruction or chat\n", format.err());
    }

    /** An output directory that cannot be created is refused before the data and the model are read. */
    @Test
    void anUnwritableOutputDirFailsBeforeTheModelIsLoaded() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file"), "not a directory");
        Path out = file.resolve("out");
        CliRun.Result r = run("generate", "--model", dir.resolve("no-such-model").toString(), "--input-dir", data.toString(),
                "--output-dir", out.toString());
        assertEquals(1, r.exitCode(), r.err());
        assertTrue(r.err().startsWith("spin generate: --output-dir " + out + " is not writable ("), r.err());
    }
}
