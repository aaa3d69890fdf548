package spin.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import spin.backend.Backend;
import spin.io.AtomicFiles;
import spin.io.SafetensorsDType;
import spin.io.SafetensorsFile;
import spin.io.SafetensorsWriter;
import spin.io.TensorEntry;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterBuffer;
import spin.model.ParameterLayout.Slot;
import spin.optim.Optimizer;

/**
 * Checkpoints under an output directory, HF's layout: {@code checkpoint-STEP/} holds an HF model
 * directory (config.json, weights, tokenizer files) plus {@code optimizer.safetensors} (optimizer
 * state, and the fp32 master weights when the model files are bf16) and {@code trainer_state.json}
 * (step, metric accumulators, the config). A checkpoint is assembled in a hidden sibling directory
 * and renamed into place whole, so a directory named checkpoint-STEP is always complete; leftovers
 * of an interrupted save are never picked up and are removed by the next save.
 */
final class TrainingCheckpoints {
    static final String STATE_FILE = "trainer_state.json";
    static final String OPTIMIZER_FILE = "optimizer.safetensors";
    private static final String MASTER_PREFIX = "master/";
    private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");
    private static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "special_tokens_map.json", "tokenizer.model", "generation_config.json");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path outputDir;

    TrainingCheckpoints(Path outputDir) {
        this.outputDir = outputDir;
    }

    /** Complete checkpoints, oldest first. */
    List<Path> list() throws IOException {
        if (!Files.isDirectory(outputDir)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(outputDir)) {
            return entries.filter(p -> NAME.matcher(p.getFileName().toString()).matches())
                    .filter(p -> Files.isRegularFile(p.resolve(STATE_FILE)))
                    .sorted(Comparator.comparingLong(TrainingCheckpoints::step))
                    .toList();
        }
    }

    Optional<Path> latest() throws IOException {
        List<Path> all = list();
        return all.isEmpty() ? Optional.empty() : Optional.of(all.getLast());
    }

    static long step(Path checkpoint) {
        Matcher m = NAME.matcher(checkpoint.getFileName().toString());
        if (!m.matches()) {
            throw new IllegalArgumentException(checkpoint + " is not a checkpoint-STEP directory");
        }
        return Long.parseLong(m.group(1));
    }

    /** Writes a complete checkpoint for {@code step}, then keeps at most {@code keep} of them (null: all). */
    Path save(long step, MistralModel model, Optimizer optimizer, ObjectNode trainerState, Path tokenizerSource,
            ModelCheckpoint.StorageType storage, Integer keep) throws IOException {
        Path target = outputDir.resolve("checkpoint-" + step);
        Path staging = outputDir.resolve(".checkpoint-" + step + ".partial");
        deleteTree(staging);
        Files.createDirectories(staging);
        writeModel(model, staging, tokenizerSource, storage);
        writeOptimizer(staging.resolve(OPTIMIZER_FILE), model, optimizer, storage != ModelCheckpoint.StorageType.F32);
        AtomicFiles.writeString(staging.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(trainerState));
        deleteTree(target);
        Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
        if (keep != null) {
            List<Path> all = list();
            for (Path old : all.subList(0, Math.max(0, all.size() - keep))) {
                deleteTree(old);
            }
        }
        return target;
    }

    /** An HF model directory: config.json, weights in {@code storage}, and the tokenizer files of the source model. */
    static void writeModel(MistralModel model, Path dir, Path tokenizerSource, ModelCheckpoint.StorageType storage)
            throws IOException {
        ModelCheckpoint.save(model, dir, storage, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        for (String name : TOKENIZER_FILES) {
            Path source = tokenizerSource.resolve(name);
            if (Files.isRegularFile(source)) {
                AtomicFiles.writeThrough(dir.resolve(name), temp -> Files.copy(source, temp, StandardCopyOption.REPLACE_EXISTING));
            }
        }
    }

    private static void writeOptimizer(Path file, MistralModel model, Optimizer optimizer, boolean withMaster)
            throws IOException {
        record Source(String name, ParameterBuffer buffer, Slot slot) {}
        List<Source> sources = new ArrayList<>();
        for (Map.Entry<String, ParameterBuffer> state : optimizer.state().entrySet()) {
            for (Slot slot : state.getValue().layout().slots()) {
                sources.add(new Source(state.getKey() + "/" + slot.name(), state.getValue(), slot));
            }
        }
        if (withMaster) {
            for (Slot slot : model.parameters().layout().slots()) {
                sources.add(new Source(MASTER_PREFIX + slot.name(), model.parameters(), slot));
            }
        }
        List<SafetensorsWriter.TensorHeader> headers = sources.stream()
                .map(s -> new SafetensorsWriter.TensorHeader(s.name(), SafetensorsDType.F32,
                        Arrays.stream(s.slot().shape()).asLongStream().toArray()))
                .toList();
        Backend backend = model.backend();
        SafetensorsWriter.write(file, headers, (i, target) -> {
            float[] values = backend.read(sources.get(i).buffer().get(sources.get(i).slot().name()));
            MemorySegment.copy(values, 0, target, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN),
                    0, values.length);
        }, Map.of("optimizer", optimizer.name(), "steps", Long.toString(optimizer.steps())));
    }

    /** Loads the checkpoint's model (fp32 master weights where saved) on {@code backend}. */
    static MistralModel loadModel(Path checkpoint, Backend backend) throws IOException {
        MistralModel model = ModelCheckpoint.load(checkpoint, backend);
        try (SafetensorsFile file = SafetensorsFile.open(checkpoint.resolve(OPTIMIZER_FILE))) {
            for (Slot slot : model.parameters().layout().slots()) {
                if (file.contains(MASTER_PREFIX + slot.name())) {
                    backend.write(model.parameters().get(slot.name()), floats(file.tensor(MASTER_PREFIX + slot.name())));
                }
            }
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
        return model;
    }

    /** Fills the optimizer's state buffers and step count from the checkpoint. */
    static void loadOptimizer(Path checkpoint, Optimizer optimizer, Backend backend) throws IOException {
        Path path = checkpoint.resolve(OPTIMIZER_FILE);
        try (SafetensorsFile file = SafetensorsFile.open(path)) {
            String saved = file.metadata().get("optimizer");
            if (!optimizer.name().equals(saved)) {
                throw new IllegalArgumentException(path + " holds " + saved + " state but the config asks for optim "
                        + optimizer.name() + "; resume with the optimizer the run started with");
            }
            for (Map.Entry<String, ParameterBuffer> state : optimizer.state().entrySet()) {
                ParameterBuffer buffer = state.getValue();
                for (Slot slot : buffer.layout().slots()) {
                    String name = state.getKey() + "/" + slot.name();
                    if (!file.contains(name)) {
                        throw new IllegalArgumentException(path + ": optimizer state \"" + name + "\" is missing; the checkpoint is damaged");
                    }
                    backend.write(buffer.get(slot.name()), floats(file.tensor(name)));
                }
            }
            optimizer.restoreSteps(Long.parseLong(file.metadata().get("steps")));
        }
    }

    /** The checkpoint's trainer_state.json; a damaged one is refused naming the file and what to do. */
    static JsonNode readState(Path checkpoint) throws IOException {
        Path file = checkpoint.resolve(STATE_FILE);
        String problem;
        try {
            JsonNode state = JSON.readTree(file.toFile());
            if (state != null && state.isObject() && state.path("config").isObject()) {
                return state;
            }
            problem = "holds no trainer state (a JSON object with \"config\")";
        } catch (JsonProcessingException e) {
            // Jackson's text may point at "[Source: REDACTED (...); line: 1, column: 30]": keep the line and column
            problem = "is not valid JSON (" + e.getOriginalMessage().replaceAll("\\[Source: [^;]*; ", "[")
                    + (e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr()) + ")";
        }
        throw new IOException(file + " " + problem + "; the checkpoint is damaged: remove " + checkpoint.getFileName()
                + " to resume from the one before it, or start a new output_dir");
    }

    private static float[] floats(TensorEntry entry) {
        if (entry.dtype() != SafetensorsDType.F32) {
            throw new IllegalArgumentException("tensor " + entry.name() + " is " + entry.dtype() + ", expected F32");
        }
        float[] out = new float[Math.toIntExact(entry.elementCount())];
        MemorySegment.copy(entry.data(), ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0,
                out, 0, out.length);
        return out;
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
