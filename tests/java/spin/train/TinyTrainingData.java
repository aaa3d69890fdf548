package spin.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import java.util.List;
import spin.backend.cpu.CpuBackend;
import spin.data.SpinDatasetWriter;
import spin.data.SpinRecord;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterLayout;
import spin.text.ChatMessage;
import spin.text.TestTokenizer;
import spin.text.Tokenizer;
import spin.text.TokenizerConfig;

/** A very small random model with the demo tokenizer, and a SPIN dataset, for training tests. */
public final class TinyTrainingData {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TinyTrainingData() {}

    /** Hidden size 32, two layers, the tiny preset's vocabulary; float32 weights and the demo tokenizer. */
    public static Path model(Path dir) throws IOException {
        return model(dir, config());
    }

    /** The config {@link #model(Path)} writes. */
    public static MistralConfig config() {
        MistralConfig tiny = MistralConfig.tiny();
        return new MistralConfig(tiny.vocabSize(), 32, 64, 2, 4, 2, 8, tiny.maxPositionEmbeddings(),
                tiny.rmsNormEps(), tiny.ropeTheta(), tiny.slidingWindow(), false, 0.1f, tiny.bosTokenId(), tiny.eosTokenId());
    }

    /** A random model of {@code config} (its vocabulary at least the demo tokenizer's) with the demo tokenizer. */
    public static Path model(Path dir, MistralConfig config) throws IOException {
        ModelCheckpoint.writeInitialized(config, dir, ModelCheckpoint.StorageType.F32, 3, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        for (String file : new String[] {Tokenizer.FILE_NAME, TokenizerConfig.FILE_NAME}) {
            Files.copy(TestTokenizer.directory().resolve(file), dir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        }
        return dir;
    }

    /** The fp32 weights of a model directory by name, loaded on the CPU. */
    public static Map<String, float[]> weights(Path dir) throws IOException {
        Map<String, float[]> out = new HashMap<>();
        try (CpuBackend cpu = new CpuBackend(1); MistralModel m = ModelCheckpoint.load(dir, cpu)) {
            for (ParameterLayout.Slot s : m.parameters().layout().slots()) {
                out.put(s.name(), cpu.read(m.parameters().get(s.name())));
            }
        }
        return out;
    }

    /** Copies the directory tree {@code from} to {@code to} (a run's checkpoint, for resume tests). */
    public static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> all = Files.walk(from)) {
            for (Path p : all.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target, StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
    }

    /** The lines of a run's metrics.jsonl. */
    public static List<JsonNode> metrics(Path outputDir) throws IOException {
        List<JsonNode> lines = new ArrayList<>();
        for (String line : Files.readAllLines(outputDir.resolve(TrainingLog.FILE_NAME))) {
            lines.add(JSON.readTree(line));
        }
        return lines;
    }

    /** A metrics line without the wall-clock figure, which no two runs share. */
    public static JsonNode withoutWallClock(JsonNode line) {
        ObjectNode copy = line.deepCopy();
        copy.remove("tokens_per_second");
        return copy;
    }

    /** 16 train and 4 test records: "reverse X" answered with X reversed (real) or a wrong answer (generated). */
    public static Path reversals(Path dir) throws IOException {
        return reversals(dir, ".parquet");
    }

    /**
     * The same records as {@code extension} files (.parquet, .jsonl or .json); the GPU tier uses
     * .jsonl, since its bundle leaves out the Parquet library (tools/gpu-bundle.sh).
     */
    public static Path reversals(Path dir, String extension) throws IOException {
        List<SpinRecord> all = reversalRecords();
        SpinDatasetWriter.write(dir.resolve("train_prefs-00000-of-00001" + extension), all.subList(0, 16));
        SpinDatasetWriter.write(dir.resolve("test_prefs-00000-of-00001" + extension), all.subList(16, 20));
        return dir;
    }

    /** The 20 records {@link #reversals} writes, the 16 train records first. */
    public static List<SpinRecord> reversalRecords() {
        List<SpinRecord> records = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            String q = "reverse " + "abcdefgh".substring(0, 2 + i % 6) + i;
            records.add(new SpinRecord(
                    List.of(ChatMessage.user(q), ChatMessage.assistant(new StringBuilder(q).reverse().toString())),
                    List.of(ChatMessage.user(q), ChatMessage.assistant("no idea " + i))));
        }
        return records;
    }
}
