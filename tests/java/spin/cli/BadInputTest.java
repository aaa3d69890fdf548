package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.params.provider.Arguments.arguments;
import static spin.cli.CliRun.run;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.lang.management.ManagementFactory;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import spin.backend.cpu.CpuBackend;
import spin.data.ParquetFixtures;
import spin.data.SpinDatasetWriter;
import spin.io.OutputLock;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterLayout;
import spin.text.Tokenizer;
import spin.text.TokenizerConfig;
import spin.train.TinyTrainingData;

/**
 * Every bad input of issue 11 through the real command line: a clean exit code, one line on
 * standard error naming the file, row or key (and the fix), no stack trace, and nothing written
 * where the command writes.
 */
class BadInputTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String RECORD = "{\"real\": [{\"role\": \"user\", \"content\": \"reverse ab\"}, "
            + "{\"role\": \"assistant\", \"content\": \"ba\"}], \"generated\": [{\"role\": \"user\", \"content\": \"reverse ab\"}, "
            + "{\"role\": \"assistant\", \"content\": \"no\"}]}";

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

    /** A bad input: the command line, the paths it must leave as they were, and what its one line must name. */
    private record Case(List<String> args, List<Path> outputs, List<String> names) {}

    @FunctionalInterface
    private interface Setup {
        Case make(Path dir) throws IOException;
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                // ------------------------------------------------ train config
                arguments("train: output_dir is empty", (Setup) dir -> {
                    // an empty output_dir is the working directory: nothing may appear there
                    Path yaml = config(dir, "output_dir: \"\"\n");
                    return new Case(List.of("train", yaml.toString()),
                            List.of(Path.of("metrics.jsonl"), Path.of("model.safetensors"), Path.of(spin.train.Trainer.RESULTS_FILE)),
                            List.of(yaml.toString(), "output_dir", "empty"));
                }),
                arguments("train: num_train_epochs 1e400", (Setup) dir -> train(dir, "num_train_epochs: 1e400\n",
                        "num_train_epochs", "finite")),
                arguments("train: num_train_epochs 1e300", (Setup) dir -> train(dir, "num_train_epochs: 1.0e300\n",
                        "num_train_epochs", "max_steps")),
                arguments("train: num_train_epochs 1e9 at 16 steps per epoch", (Setup) dir -> train(dir,
                        "num_train_epochs: 1.0e9\nper_device_train_batch_size: 1\n", "num_train_epochs", "16 per epoch", "max_steps")),
                arguments("train: adam_beta1 1.5", (Setup) dir -> train(dir, "optim: adamw_torch\nadam_beta1: 1.5\n",
                        "adam_beta1", "[0, 1)")),
                arguments("train: adam_beta2 1.0", (Setup) dir -> train(dir, "optim: adamw_torch\nadam_beta2: 1.0\n",
                        "adam_beta2", "[0, 1)")),
                arguments("train: adam_epsilon -1", (Setup) dir -> train(dir, "optim: adamw_torch\nadam_epsilon: -1\n",
                        "adam_epsilon", ">= 0")),
                arguments("train: weight_decay -1 names the file", (Setup) dir -> train(dir, "weight_decay: -1\n",
                        "weight_decay", ">= 0")),
                arguments("train: a key given twice", (Setup) dir -> {
                    // base config is 8 lines; learning_rate comes on lines 9 and 11
                    Path yaml = config(dir, "learning_rate: 1.0e-5\nseed: 1\nlearning_rate: 2.0e-5\n");
                    return new Case(List.of("train", yaml.toString()), List.of(dir.resolve("out")),
                            List.of(yaml.toString(), "\"learning_rate\"", "lines 9 and 11"));
                }),
                arguments("train: one file as train and test with do_eval", (Setup) dir -> {
                    Path file = dir.resolve("records.jsonl");
                    Files.writeString(file, RECORD + "\n" + RECORD + "\n");
                    Path yaml = config(dir, file, "do_eval: true\n");
                    return new Case(List.of("train", yaml.toString()), List.of(dir.resolve("out")),
                            List.of(file.toString(), "do_eval", "test split"));
                }),
                arguments("train: an empty train file", (Setup) dir -> {
                    Path dataset = Files.createDirectories(dir.resolve("dataset"));
                    Files.writeString(dataset.resolve("train.jsonl"), "");
                    Files.writeString(dataset.resolve("test.jsonl"), RECORD + "\n");
                    Path yaml = config(dir, dataset, "");
                    return new Case(List.of("train", yaml.toString()), List.of(dir.resolve("out")),
                            List.of(dataset.resolve("train.jsonl").toString(), "no records"));
                }),
                arguments("train --resume: a damaged trainer_state.json", (Setup) dir -> {
                    Path yaml = config(dir, "max_steps: 1\nsave_strategy: steps\nsave_steps: 1\n");
                    CliRun.Result first = run("train", yaml.toString(), "--threads=1");
                    assertEquals(0, first.exitCode(), first.err());
                    Path out = dir.resolve("out");
                    Files.delete(out.resolve(spin.train.Trainer.RESULTS_FILE)); // as if it crashed after the checkpoint
                    Path state = out.resolve("checkpoint-1/trainer_state.json");
                    Files.writeString(state, "{\"global_step\": 1, \"config\": {");
                    return new Case(List.of("train", yaml.toString(), "--resume"), List.of(out),
                            List.of(state.toString(), "not valid JSON", "remove checkpoint-1"));
                }),
                // ------------------------------------------------ model files
                arguments("score: config.json vocab_size 1e9", (Setup) dir -> {
                    Path broken = brokenModel(dir, "vocab_size", 1_000_000_000);
                    return score(dir, broken, data, "config.json", "model.embed_tokens.weight", "[1000000000, 32]");
                }),
                arguments("score: config.json intermediate_size 1e9", (Setup) dir -> {
                    Path broken = brokenModel(dir, "intermediate_size", 1_000_000_000);
                    return score(dir, broken, data, "config.json", "model.layers.0.mlp.gate_proj.weight", "[1000000000, 32]");
                }),
                arguments("score: a model larger than the machine's memory", (Setup) dir -> {
                    Path big = modelLargerThanMemory(dir.resolve("big"));
                    return score(dir, big, data, big.toString(), "parameters need", "GiB");
                }),
                arguments("generate: config.json eos_token_id -3", (Setup) dir -> {
                    Path broken = brokenModel(dir, "eos_token_id", -3);
                    return generate(dir, broken, data, List.of(), broken.resolve("config.json").toString(), "eos_token_id", "-3");
                }),
                arguments("score: a model whose log-probs are NaN", (Setup) dir -> {
                    Path nan = nanModel(dir.resolve("nan"));
                    return score(dir, nan, data, nan.toString(), "record 0", "NaN");
                }),
                // ------------------------------------------------ flags
                arguments("generate --max-new-tokens 2147483647", (Setup) dir -> generate(dir, model, data,
                        List.of("--max-new-tokens", "2147483647"), "--max-new-tokens", "max_position_embeddings",
                        model.resolve("config.json").toString())),
                arguments("bench train --iters 0", (Setup) dir -> new Case(List.of("bench", "train", "--preset", "tiny", "--iters", "0"),
                        List.of(), List.of("spin bench train", "--iters", ">= 1"))),
                arguments("bench train larger than memory", (Setup) dir -> new Case(
                        List.of("bench", "train", "--preset", "tiny", "--batch", "1000000", "--seq-len", "2048"), List.of(),
                        List.of("--batch", "--seq-len", "TiB"))),
                arguments("bench generate --new-tokens 2147483647", (Setup) dir -> new Case(
                        List.of("bench", "generate", "--preset", "tiny", "--new-tokens", "2147483647", "--warmup-seconds", "0"),
                        List.of(), List.of("--new-tokens", "max_position_embeddings"))),
                // ------------------------------------------------ data files
                arguments("score: invalid UTF-8 in a .jsonl", (Setup) dir -> {
                    Path file = invalidUtf8(dir);
                    return score(dir, model, file, file + ", line 2", "UTF-8", "byte offset " + (RECORD.length() + 1 + 47));
                }),
                arguments("generate: invalid UTF-8 in a .jsonl", (Setup) dir -> {
                    Path file = invalidUtf8(dir);
                    return generate(dir, model, file, List.of(), file + ", line 2", "UTF-8", "byte offset " + (RECORD.length() + 1 + 47));
                }),
                arguments("score: an empty .jsonl", (Setup) dir -> {
                    Path file = Files.writeString(dir.resolve("empty.jsonl"), "");
                    return score(dir, model, file, file.toString(), "no records");
                }),
                arguments("generate: a blank .jsonl", (Setup) dir -> {
                    Path file = Files.writeString(dir.resolve("blank.jsonl"), "\n   \n");
                    return generate(dir, model, file, List.of(), file.toString(), "no records");
                }),
                arguments("convert: an empty shard", (Setup) dir -> {
                    Path shards = Files.createDirectories(dir.resolve("generated"));
                    Files.writeString(shards.resolve("loser_0.jsonl"), RECORD + "\n");
                    Files.writeString(shards.resolve("loser_1.jsonl"), "");
                    Files.writeString(shards.resolve("loser_0_test.jsonl"), RECORD + "\n");
                    return new Case(List.of("convert", "--input-dir", shards.toString(), "--output-dir", dir.resolve("out").toString()),
                            List.of(dir.resolve("out")), List.of(shards.resolve("loser_1.jsonl").toString(), "no records"));
                }),
                arguments("reformat: an empty train split file", (Setup) dir -> {
                    // (an empty test split stays valid: a dataset may have no held-out records)
                    Path sft = Files.createDirectories(dir.resolve("sft"));
                    Files.writeString(sft.resolve("train_sft.json"), "[]");
                    Files.writeString(sft.resolve("test_sft.jsonl"), "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                            + "{\"role\": \"assistant\", \"content\": \"hello\"}]}\n");
                    return new Case(List.of("reformat", "--data", sft.toString(), "--output-dir", dir.resolve("out").toString()),
                            List.of(dir.resolve("out")), List.of(sft.resolve("train_sft.json").toString(), "no records"));
                }),
                arguments("score: a Parquet BLOB content column", (Setup) dir -> {
                    Path file = dir.resolve("blob.parquet");
                    ParquetFixtures.write(file, "SELECT [{'content': 'reverse ab'::BLOB, 'role': 'user'}, "
                            + "{'content': 'ba'::BLOB, 'role': 'assistant'}] AS real, "
                            + "[{'content': 'reverse ab', 'role': 'user'}, {'content': 'no', 'role': 'assistant'}] AS generated");
                    return score(dir, model, file, file + ", row 0", "real[0].content", "BLOB", "VARCHAR");
                }),
                arguments("generate: a Parquet TIMESTAMP content column", (Setup) dir -> {
                    Path file = dir.resolve("timestamp.parquet");
                    ParquetFixtures.write(file, "SELECT [{'content': 'reverse ab', 'role': 'user'}, "
                            + "{'content': 'ba', 'role': 'assistant'}] AS real, "
                            + "[{'content': TIMESTAMP '2024-01-01 00:00:00', 'role': 'user'}, "
                            + "{'content': TIMESTAMP '2024-01-02 00:00:00', 'role': 'assistant'}] AS generated");
                    return generate(dir, model, file, List.of(), file + ", row 0", "generated[0].content", "TIMESTAMP");
                }));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    @Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // before the checks, some trained for ever
    void isRefusedInOneLineThatNamesItAndNothingIsWritten(String name, Setup setup) throws IOException {
        Case c = setup.make(dir);
        Map<String, String> before = snapshot(c.outputs());
        CliRun.Result r = run(c.args().toArray(String[]::new));
        String err = r.err().strip();
        assertEquals(1, r.exitCode(), r.err());
        assertEquals(1, err.lines().count(), "one line on standard error:\n" + r.err());
        assertTrue(err.startsWith("spin " + c.args().get(0)), err);
        for (String expected : c.names()) {
            assertTrue(err.contains(expected), "should name " + expected + ": " + err);
        }
        for (String output : List.of(r.err(), r.out())) {
            assertFalse(output.contains("Exception") || output.contains("\tat "), "a stack trace:\n" + output);
        }
        assertEquals(before, snapshot(c.outputs()), "the command wrote where it writes");
    }

    /** HF trains with a batch (or an accumulation) larger than the data: one step per epoch. So does spin, without overflow. */
    @Test
    void batchAndAccumulationAsLargeAsAnIntTrainOneStepPerEpochAsHfDoes() throws IOException {
        for (String key : List.of("per_device_train_batch_size", "gradient_accumulation_steps")) {
            Path out = dir.resolve(key);
            Path yaml = config(dir, data, "output_dir: " + out + "\nnum_train_epochs: 2\nlogging_steps: 1\nsave_strategy: \"no\"\n" + key + ": "
                    + Integer.MAX_VALUE + "\n");
            CliRun.Result r = run("train", yaml.toString(), "--threads=1");
            assertEquals(0, r.exitCode(), r.err());
            assertTrue(r.err().contains("16 records, 2 steps (1 per epoch;"), r.err());
            assertEquals(2, Files.readAllLines(out.resolve("metrics.jsonl")).size());
        }
    }

    // ---------------------------------------------------------------- setups

    /** The training config the cases start from (8 lines), with {@code extra} lines appended (they replace base keys they name). */
    private static Path config(Path dir, String extra) throws IOException {
        return config(dir, data, extra);
    }

    private static Path config(Path dir, Path dataset, String extra) throws IOException {
        Path yaml = dir.resolve("config.yaml");
        String base = "model_name_or_path: " + model + "\ndataset_mixer:\n  " + dataset + ": 1.0\noutput_dir: " + dir.resolve("out")
                + "\nper_device_train_batch_size: 8\nmax_length: 64\nmax_prompt_length: 32\nnum_train_epochs: 1\n";
        StringBuilder text = new StringBuilder();
        for (String line : base.split("\n", -1)) {
            String key = line.contains(":") ? line.substring(0, line.indexOf(':') + 1) : null;
            if (key == null || line.startsWith(" ") || !("\n" + extra).contains("\n" + key)) {
                text.append(line).append(line.isEmpty() ? "" : "\n");
            }
        }
        Files.writeString(yaml, text + extra);
        return yaml;
    }

    private static Case train(Path dir, String extra, String... names) throws IOException {
        Path yaml = config(dir, extra);
        List<String> all = new ArrayList<>(List.of(yaml.toString()));
        all.addAll(Arrays.asList(names));
        return new Case(List.of("train", yaml.toString()), List.of(dir.resolve("out")), all);
    }

    private static Case score(Path dir, Path modelDir, Path input, String... names) {
        Path out = dir.resolve("scores.jsonl");
        return new Case(List.of("score", "--model", modelDir.toString(), "--data", input.toString(), "--out", out.toString(),
                "--threads", "1"), List.of(out), List.of(names));
    }

    private static Case generate(Path dir, Path modelDir, Path input, List<String> flags, String... names) {
        Path out = dir.resolve("generated");
        List<String> args = new ArrayList<>(List.of("generate", "--model", modelDir.toString(), "--input-dir", input.toString(),
                "--output-dir", out.toString(), "--threads", "1"));
        args.addAll(flags.isEmpty() ? List.of("--max-new-tokens", "4") : flags);
        return new Case(args, List.of(out), List.of(names));
    }

    /** Two records, the second with a Latin-1 byte (0xE9) 47 bytes into its line. */
    private static Path invalidUtf8(Path dir) throws IOException {
        Path file = dir.resolve("latin1.jsonl");
        byte[] line = RECORD.replace("\"reverse ab\"}, {\"role\": \"assistant\"", "\"reverse \u00e9b\"}, {\"role\": \"assistant\"")
                .getBytes(StandardCharsets.ISO_8859_1);
        assertEquals((byte) 0xE9, line[47]);
        Files.write(file, (RECORD + "\n").getBytes(StandardCharsets.UTF_8));
        Files.write(file, line, java.nio.file.StandardOpenOption.APPEND);
        return file;
    }

    /** The shared model with one key of config.json replaced. */
    private static Path brokenModel(Path dir, String key, int value) throws IOException {
        Path copy = Files.createDirectories(dir.resolve("broken"));
        try (Stream<Path> files = Files.list(model)) {
            for (Path f : files.toList()) {
                Files.copy(f, copy.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        ObjectNode config = (ObjectNode) JSON.readTree(copy.resolve(MistralConfig.FILE_NAME).toFile());
        config.put(key, value);
        Files.writeString(copy.resolve(MistralConfig.FILE_NAME), config.toPrettyString());
        return copy;
    }

    /** The shared model with its final norm weights NaN: every log-prob is NaN. */
    private static Path nanModel(Path dir) throws IOException {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel m = ModelCheckpoint.load(model, cpu)) {
            float[] nan = new float[m.config().hiddenSize()];
            Arrays.fill(nan, Float.NaN);
            cpu.write(m.parameters().get(ParameterLayout.Names.FINAL_NORM), nan);
            ModelCheckpoint.save(m, dir, ModelCheckpoint.StorageType.F32, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        }
        copyTokenizer(dir);
        return dir;
    }

    /**
     * A valid model directory whose fp32 weights need a quarter more than the machine's memory: the
     * safetensors header is real, its data a sparse file, so it costs no disk.
     */
    private static Path modelLargerThanMemory(Path dir) throws IOException {
        long memory = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
        int vocab = 1 << 30;
        int hidden = (int) Math.max(8, (memory * 5 / 4) / (2L * vocab * Float.BYTES) / 8 * 8 + 8);
        MistralConfig config = new MistralConfig(vocab, hidden, 8, 1, 1, 1, hidden, 2048, 1e-5f, 10000f, 0, false, 0.02f, 1, 2);
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(MistralConfig.FILE_NAME), config.toJson("bfloat16"));
        ObjectNode header = JSON.createObjectNode();
        long offset = 0;
        for (ParameterLayout.Slot slot : new ParameterLayout(config).slots()) {
            ObjectNode t = header.putObject(slot.name()).put("dtype", "BF16");
            Arrays.stream(slot.shape()).forEach(t.putArray("shape")::add);
            t.putArray("data_offsets").add(offset).add(offset + slot.size() * 2);
            offset += slot.size() * 2;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        byte[] padded = Arrays.copyOf(json, (json.length + 7) / 8 * 8);
        Arrays.fill(padded, json.length, padded.length, (byte) ' ');
        try (RandomAccessFile file = new RandomAccessFile(dir.resolve("model.safetensors").toFile(), "rw")) {
            file.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded.length).array());
            file.write(padded);
            file.setLength(8 + padded.length + offset);
        }
        assertTrue(offset * 2 > memory, "fp32 weights larger than memory");
        copyTokenizer(dir);
        return dir;
    }

    private static void copyTokenizer(Path dir) throws IOException {
        for (String file : new String[] {Tokenizer.FILE_NAME, TokenizerConfig.FILE_NAME}) {
            Files.copy(model.resolve(file), dir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * Every file under the paths with a digest of its bytes (a path without files as "absent"), to
     * see that nothing changed. The output lock ({@link OutputLock#FILE_NAME}), which a command takes
     * before it validates its inputs, is no output and is left out.
     */
    private static Map<String, String> snapshot(List<Path> paths) throws IOException {
        Map<String, String> files = new TreeMap<>();
        for (Path root : paths) {
            List<Path> found = List.of();
            if (Files.exists(root)) {
                try (Stream<Path> all = Files.walk(root)) {
                    found = all.filter(Files::isRegularFile).filter(p -> !p.getFileName().toString().equals(OutputLock.FILE_NAME))
                            .toList();
                }
            }
            if (found.isEmpty()) {
                files.put(root.toString(), "absent");
            }
            for (Path p : found) {
                files.put(p.toString(), Files.size(p) + ":" + Arrays.hashCode(Files.readAllBytes(p)));
            }
        }
        return files;
    }
}
