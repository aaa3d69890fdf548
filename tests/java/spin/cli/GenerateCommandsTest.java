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
import java.util.Set;
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
import spin.generate.StopCriteria;
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
        return referenceAnswer(question, false);
    }

    /** With {@code bos}, the prompt starts with id 1, {@code <s>}: what vLLM's tokenization of a Mistral prompt gives. */
    private static String referenceAnswer(String question, boolean bos) throws IOException {
        try (Tokenizer tokenizer = Tokenizer.load(model); CpuBackend cpu = new CpuBackend(1);
                MistralModel m = ModelCheckpoint.load(model, cpu)) {
            int[] promptIds = tokenizer.encode("### Instruction: " + question + "\n\n### Response: ");
            int[] ids = bos ? new int[promptIds.length + 1] : promptIds;
            if (bos) {
                ids[0] = 1;
                System.arraycopy(promptIds, 0, ids, 1, promptIds.length);
            }
            int prompt = ids.length, v = m.config().vocabSize();
            m.setLogProbChunkRows(0); // unfused, so the forward keeps its logits
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

    /** The reference's generate_vllm.py path: BOS first, special tokens left out of the decoded answer. */
    @Test
    void addBosStartsEveryPromptWithTheBosToken() throws IOException {
        Path out = dir.resolve("vllm-path");
        CliRun.Result r = run("generate", "--model", model.toString(), "--input-dir", data.toString(), "--output-dir", out.toString(),
                "--frac-len", "4", "--data-frac", "0", "--max-new-tokens", String.valueOf(NEW_TOKENS), "--add-bos",
                "--skip-special-tokens", "--threads", "1");
        assertEquals(0, r.exitCode(), r.err());
        int[] order = NumpyPermutation.permutation(10, 42);
        List<SpinRecord> train = SpinDatasets.load(data, "train", false).values(), written = shard(out.resolve("loser_0.jsonl"));
        boolean differs = false;
        for (int i = 0; i < 4; i++) {
            String question = train.get(order[i]).real().get(0).content();
            assertEquals(referenceAnswer(question, true), written.get(i).generated().get(1).content(), "record " + i);
            differs |= !referenceAnswer(question, true).equals(referenceAnswer(question, false));
        }
        assertTrue(differs, "BOS changes some answer, so the flag is seen to act");
    }

    @Test
    void skipSpecialTokensLeavesThemOutOfTheAnswer() throws IOException {
        GenerationOptions keep = new GenerationOptions(), skip = new GenerationOptions();
        skip.skipSpecialTokens = true;
        try (Tokenizer tokenizer = Tokenizer.load(model)) {
            int[] answer = concat(tokenizer.encode(" hi"), new int[] {1, 0}, tokenizer.encode("there"), new int[] {2});
            StopCriteria stop = new StopCriteria(100, Set.of(2), List.of(),
                    tokens -> tokenizer.decode(tokens, false));
            assertEquals("hi<s><unk> there", keep.answerText(answer, tokenizer, stop), "generate.py: only </s> is removed");
            assertEquals("hi there", skip.answerText(answer, tokenizer, stop), "vLLM: no special token is decoded");
        }
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
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

    /**
     * The reference's own data repeats rows (SPIN_iter0: 99,584 rows, 49,792 distinct): such rows go
     * through generate and convert, while fractions cut with two --frac-len values overlap and are refused.
     */
    @Test
    void repeatedSourceRowsConvertButOverlappingFractionsAreRefused() throws IOException {
        Path repeating = dir.resolve("repeating");
        List<SpinRecord> rows = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            rows.add(record(QUESTIONS[i % 3], "Gold " + i % 3));
        }
        SpinDatasetWriter.write(repeating.resolve("train_prefs-00000-of-00001.parquet"), rows);
        SpinDatasetWriter.write(repeating.resolve("test_prefs-00000-of-00001.parquet"), rows.subList(0, 2));
        Path out = dir.resolve("generated");
        String[] common = {"--model", model.toString(), "--input-dir", repeating.toString(), "--output-dir", out.toString(),
            "--max-new-tokens", "3", "--threads", "1"};
        assertEquals(0, run(concat(new String[] {"generate", "--frac-len", "3", "--num-fracs", "2"}, common)).exitCode());
        assertEquals(0, run(concat(new String[] {"generate", "--split", "test"}, common)).exitCode());
        CliRun.Result convert = run("convert", "--input-dir", out.toString(), "--output-dir", dir.resolve("next").toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals("Wrote 6 train and 2 test records to " + dir.resolve("next") + "\n"
                + "3 records repeat a real conversation of an earlier row (the source data repeats them; kept)\n", convert.out());

        // fraction 1 of 2 rows is shuffled rows 2..3, which loser_0 (3 rows: 0..2) already holds
        assertEquals(0, run(concat(new String[] {"generate", "--frac-len", "2", "--data-frac", "1"}, common)).exitCode());
        CliRun.Result overlap = run("convert", "--input-dir", out.toString(), "--output-dir", dir.resolve("next").toString());
        assertEquals(1, overlap.exitCode());
        int[] order = NumpyPermutation.permutation(6, 42);
        assertTrue(overlap.err().contains(out.resolve("loser_1.jsonl") + ", line 1: source row " + order[2] + " is also at "
                + out.resolve("loser_0.jsonl") + ", line 3; two fractions overlap"), overlap.err());
    }

    private static String[] concat(String[] first, String[] second) {
        String[] all = Arrays.copyOf(first, first.length + second.length);
        System.arraycopy(second, 0, all, first.length, second.length);
        return all;
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

    /**
     * An output directory that cannot be created is refused before the data and the weights are read
     * (only config.json is, to check the flags against it): the input here is no data at all.
     */
    @Test
    void anUnwritableOutputDirFailsBeforeTheModelIsLoaded() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file"), "not a directory");
        Path out = file.resolve("out");
        CliRun.Result r = run("generate", "--model", model.toString(), "--input-dir", dir.resolve("no-such-data").toString(),
                "--output-dir", out.toString());
        assertEquals(1, r.exitCode(), r.err());
        assertTrue(r.err().startsWith("spin generate: --output-dir " + out + " is not writable ("), r.err());
    }
}
