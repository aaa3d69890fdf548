package spin.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import spin.backend.Backend;
import spin.dist.Communicator;
import spin.io.AtomicFiles;
import spin.io.SafetensorsDType;
import spin.io.SafetensorsFile;
import spin.io.SafetensorsWriter;
import spin.io.TensorEntry;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterBuffer;
import spin.model.ParameterLayout;
import spin.model.ParameterLayout.Slot;
import spin.model.ShardLayout;
import spin.model.ZeroShards;
import spin.optim.Optimizer;

/**
 * Checkpoints under an output directory, HF's layout: {@code checkpoint-STEP/} holds an HF model
 * directory (config.json, weights, tokenizer files) plus {@code optimizer.safetensors} (optimizer
 * state, and the fp32 master weights when the model files are bf16) and {@code trainer_state.json}
 * (step, metric accumulators, the config). A checkpoint is assembled in a hidden sibling directory
 * {@code .checkpoint-STEP.partial} and renamed into place whole, so a directory named checkpoint-STEP
 * is always complete. A checkpoint is deleted (rotation, or a stale one replaced) by renaming it to
 * the hidden {@code .checkpoint-STEP.deleting} first and removing that, so a delete cut short never
 * leaves a visible, incomplete checkpoint. {@link #sweep} removes the hidden leftovers of
 * interrupted saves and deletes, and the temporary files of interrupted writes, on start.
 */
final class TrainingCheckpoints {
    static final String STATE_FILE = "trainer_state.json";
    static final String OPTIMIZER_FILE = "optimizer.safetensors";
    private static final String MASTER_PREFIX = "master/";
    private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");
    /** Files of the source model carried into every saved model: the tokenizer's, and its own generation settings. */
    private static final List<String> SOURCE_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "special_tokens_map.json", "tokenizer.model", MistralConfig.GENERATION_FILE_NAME);
    /** Hidden directories of a save being assembled or a checkpoint being deleted. */
    private static final Pattern HIDDEN = Pattern.compile("\\.checkpoint-\\d+\\.(partial|deleting)");
    /** Files the trainer writes into output_dir and checkpoint directories, whose temporary files are ours to sweep. */
    private static final Pattern WRITTEN = Pattern.compile("model\\.safetensors|model-\\d+-of-\\d+\\.safetensors"
            + "|model\\.safetensors\\.index\\.json|config\\.json|optimizer\\.safetensors|trainer_state\\.json"
            + "|metrics\\.jsonl|train_results\\.json");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    /** Test seam: runs at each stage of a save ({@code staged}, {@code renamed}, {@code set-aside}) with its directory. */
    @FunctionalInterface
    interface Hook {
        void at(String stage, Path dir) throws IOException;
    }

    static volatile Hook hook = (stage, dir) -> {};

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

    /**
     * Writes a complete checkpoint for {@code step}, then keeps at most {@code keep} of them (null:
     * all). Refuses ({@link TrainingDivergedException}) to save non-finite optimizer state. A failed
     * save (a full disk, say) removes what it staged and leaves every earlier checkpoint as it was.
     */
    Path save(long step, MistralModel model, Optimizer optimizer, ObjectNode trainerState, Path tokenizerSource,
            ModelCheckpoint.StorageType storage, Integer keep) throws IOException {
        Backend backend = model.backend();
        for (Map.Entry<String, ParameterBuffer> state : optimizer.state().entrySet()) {
            if (!backend.allFinite(state.getValue().flat())) {
                throw new TrainingDivergedException("step " + step + ": the optimizer state " + state.getKey()
                        + " holds NaN or Inf values; not saved, the last good checkpoint is kept");
            }
        }
        Path target = outputDir.resolve("checkpoint-" + step);
        Path staging = outputDir.resolve(".checkpoint-" + step + ".partial");
        deleteTree(staging);
        try {
            Files.createDirectories(staging);
            hook.at("staged", staging);
            writeModel(model, staging, tokenizerSource, storage);
            writeOptimizer(staging.resolve(OPTIMIZER_FILE), model, optimizer, storage != ModelCheckpoint.StorageType.F32);
            AtomicFiles.writeString(staging.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(trainerState));
        } catch (IOException | RuntimeException e) {
            try {
                deleteTree(staging);
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        if (Files.exists(target)) {
            remove(target);
        }
        Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
        hook.at("renamed", target);
        if (keep != null) {
            rotate(keep, step);
        }
        return target;
    }

    /**
     * {@link #save} by every rank of a ZeRO-3 group (a collective): rank 0 stages the directory and
     * writes the gathered HF model, every rank writes its shard of the fp32 master weights and of
     * each optimizer state ({@link CheckpointState}), rank 0 the manifest and, once every rank has
     * written, trainer_state.json (the marker a complete checkpoint has) before the rename.
     * A rank that fails stops the group (its caller aborts it), and rank 0 removes what was staged.
     *
     * @return the checkpoint directory
     */
    Path saveSharded(long step, MistralModel model, Optimizer optimizer, ObjectNode trainerState, Path tokenizerSource,
            ModelCheckpoint.StorageType storage, Integer keep) throws IOException {
        Backend backend = model.backend();
        ZeroShards zero = model.zeroShards();
        Communicator group = zero.communicator();
        boolean leader = group.rank() == 0;
        for (Map.Entry<String, ParameterBuffer> state : optimizer.state().entrySet()) {
            if (!backend.allFinite(state.getValue().flat())) {
                throw new TrainingDivergedException("step " + step + ": the optimizer state " + state.getKey()
                        + " holds NaN or Inf values on rank " + group.rank() + "; not saved, the last good checkpoint is kept");
            }
        }
        Path target = outputDir.resolve("checkpoint-" + step);
        Path staging = outputDir.resolve(".checkpoint-" + step + ".partial");
        if (leader) {
            deleteTree(staging);
            Files.createDirectories(staging.resolve(CheckpointState.ZERO_DIR));
            hook.at("staged", staging);
        }
        group.barrier();
        try {
            writeModel(model, staging, tokenizerSource, storage);
            writeShard(staging.resolve(CheckpointState.ZERO_DIR), model, optimizer);
            if (leader) {
                ObjectNode manifest = CheckpointState.manifest(zero.shards(), optimizer.name(), optimizer.steps(), step);
                AtomicFiles.writeString(staging.resolve(CheckpointState.ZERO_DIR).resolve(CheckpointState.MANIFEST),
                        JSON.writerWithDefaultPrettyPrinter().writeValueAsString(manifest));
            }
            group.barrier();
            if (leader) {
                AtomicFiles.writeString(staging.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(trainerState));
            }
        } catch (IOException | RuntimeException e) {
            if (leader) {
                try {
                    deleteTree(staging);
                } catch (IOException cleanup) {
                    e.addSuppressed(cleanup);
                }
            }
            throw e;
        }
        if (leader) {
            if (Files.exists(target)) {
                remove(target);
            }
            Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
            hook.at("renamed", target);
            if (keep != null) {
                rotate(keep, step);
            }
        }
        // The others return once the checkpoint is in place, so that what they do next (a resume
        // test reading it, the end of the run) never sees it half renamed.
        group.barrier();
        return target;
    }

    /** This rank's flat shards of the master weights and each optimizer state, in one file. */
    private static void writeShard(Path dir, MistralModel model, Optimizer optimizer) throws IOException {
        ZeroShards zero = model.zeroShards();
        Communicator group = zero.communicator();
        List<String> names = new ArrayList<>();
        List<ParameterBuffer> buffers = new ArrayList<>();
        names.add(CheckpointState.MASTER);
        buffers.add(model.masterWeights());
        for (Map.Entry<String, ParameterBuffer> state : optimizer.state().entrySet()) {
            names.add(state.getKey());
            buffers.add(state.getValue());
        }
        long elements = zero.shards().shardTotal();
        List<SafetensorsWriter.TensorHeader> headers = names.stream()
                .map(n -> new SafetensorsWriter.TensorHeader(n, SafetensorsDType.F32, new long[] {elements})).toList();
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("optimizer", optimizer.name());
        metadata.put("steps", Long.toString(optimizer.steps()));
        metadata.put("rank", Integer.toString(group.rank()));
        metadata.put("world_size", Integer.toString(group.worldSize()));
        Backend backend = model.backend();
        // Rank 0 made it; a process that sees output_dir only once rank 0 made it (a slow shared filesystem) makes it too.
        Files.createDirectories(dir);
        SafetensorsWriter.write(dir.resolve(CheckpointState.rankFileName(group.rank(), group.worldSize())), headers,
                (i, target) -> {
                    float[] values = backend.read(buffers.get(i).flat().view(0, Math.toIntExact(elements)));
                    MemorySegment.copy(values, 0, target, LE_FLOAT, 0, values.length);
                }, metadata);
    }

    /**
     * Keeps the newest {@code keep} complete checkpoints: every other checkpoint-STEP directory
     * older than {@code current} (complete, or an incomplete leftover of an older version) is
     * removed. A resume calls it too, finishing a rotation its killed predecessor began.
     */
    void rotate(int keep, long current) throws IOException {
        List<Path> complete = list();
        List<Path> kept = complete.subList(Math.max(0, complete.size() - keep), complete.size());
        for (Path old : all()) {
            if (!kept.contains(old) && step(old) < current) {
                remove(old);
            }
        }
    }

    /** Every directory named checkpoint-STEP, complete or not, oldest first. */
    private List<Path> all() throws IOException {
        try (Stream<Path> entries = Files.list(outputDir)) {
            return entries.filter(p -> NAME.matcher(p.getFileName().toString()).matches()).filter(Files::isDirectory)
                    .sorted(Comparator.comparingLong(TrainingCheckpoints::step)).toList();
        }
    }

    /** Deletes a checkpoint by renaming it to a hidden name first: a delete cut short leaves only a hidden leftover. */
    private void remove(Path checkpoint) throws IOException {
        Path aside = outputDir.resolve("." + checkpoint.getFileName() + ".deleting");
        deleteTree(aside);
        Files.move(checkpoint, aside, StandardCopyOption.ATOMIC_MOVE);
        hook.at("set-aside", aside);
        deleteTree(aside);
    }

    /**
     * Removes what interrupted runs left in output_dir: hidden checkpoint directories of saves and
     * deletes cut short, and temporary files of the trainer's own writes (only those names; nothing
     * else in the directory is touched). Call it holding output_dir's lock.
     *
     * @return what was removed
     */
    List<Path> sweep() throws IOException {
        List<Path> removed = new ArrayList<>();
        if (!Files.isDirectory(outputDir)) {
            return removed;
        }
        try (Stream<Path> entries = Files.list(outputDir)) {
            for (Path p : entries.sorted().toList()) {
                if (HIDDEN.matcher(p.getFileName().toString()).matches() && Files.isDirectory(p)) {
                    deleteTree(p);
                    removed.add(p);
                }
            }
        }
        removed.addAll(AtomicFiles.sweep(outputDir, TrainingCheckpoints::writtenHere));
        return removed;
    }

    /** Whether the trainer writes files of this name into output_dir or a checkpoint. */
    static boolean writtenHere(String name) {
        return WRITTEN.matcher(name).matches() || SOURCE_FILES.contains(name);
    }

    /**
     * An HF model directory: config.json, generation_config.json, weights in {@code storage}, and the
     * tokenizer files of the source model, whose own generation_config.json (if any) replaces the one
     * written from config.json.
     */
    static void writeModel(MistralModel model, Path dir, Path tokenizerSource, ModelCheckpoint.StorageType storage)
            throws IOException {
        // A group's model is gathered by every rank and written by rank 0 alone.
        ModelCheckpoint.save(model, dir, storage, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        if (model.isSharded() && model.zeroShards().communicator().rank() != 0) {
            return;
        }
        for (String name : SOURCE_FILES) {
            Path source = tokenizerSource.resolve(name);
            if (Files.isRegularFile(source)) {
                // streamed into the temporary file, which has the umask's permissions (Files.copy would copy the source's mode)
                AtomicFiles.write(dir.resolve(name), channel -> {
                    try (InputStream in = Files.newInputStream(source)) {
                        in.transferTo(Channels.newOutputStream(channel));
                    }
                });
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
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("optimizer", optimizer.name());
        metadata.put("steps", Long.toString(optimizer.steps()));
        Backend backend = model.backend();
        SafetensorsWriter.write(file, headers, (i, target) -> {
            float[] values = backend.read(sources.get(i).buffer().get(sources.get(i).slot().name()));
            MemorySegment.copy(values, 0, target, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN),
                    0, values.length);
        }, metadata);
    }

    /**
     * Loads the checkpoint's model (fp32 master weights where saved) on {@code backend}, whole,
     * whatever world size wrote it.
     */
    static MistralModel loadModel(Path checkpoint, Backend backend) throws IOException {
        MistralModel model = ModelCheckpoint.load(checkpoint, backend);
        try {
            if (CheckpointState.isSharded(checkpoint)) {
                fillMaster(checkpoint, model);
                return model;
            }
            try (SafetensorsFile file = SafetensorsFile.open(checkpoint.resolve(OPTIMIZER_FILE))) {
                for (Slot slot : model.parameters().layout().slots()) {
                    if (file.contains(MASTER_PREFIX + slot.name())) {
                        backend.write(model.parameters().get(slot.name()), floats(file.tensor(MASTER_PREFIX + slot.name())));
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
        return model;
    }

    /**
     * This rank's shard of the checkpoint's fp32 master weights, whatever world size wrote it
     * (resharding: each piece is read from wherever it was written).
     */
    static MistralModel loadShardedModel(Path checkpoint, Communicator group) throws IOException {
        MistralModel model = MistralModel.sharded(MistralConfig.read(checkpoint), group);
        try {
            fillMaster(checkpoint, model);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
        return model;
    }

    /** Fills {@link MistralModel#masterWeights()} (whole or a shard) from the checkpoint's fp32 state. */
    private static void fillMaster(Path checkpoint, MistralModel model) throws IOException {
        try (CheckpointState state = CheckpointState.open(checkpoint, model.config())) {
            fill(state, CheckpointState.MASTER, model.masterWeights(), model);
        }
    }

    /** Fills every slot of {@code target} (whole weights, or a shard's pieces) with {@code kind} from {@code state}. */
    private static void fill(CheckpointState state, String kind, ParameterBuffer target, MistralModel model) throws IOException {
        Backend backend = model.backend();
        ParameterLayout full = new ParameterLayout(model.config());
        if (!model.isSharded()) {
            for (Slot slot : full.slots()) {
                backend.write(target.get(slot.name()), state.read(kind, slot.offset(), Math.toIntExact(slot.size())));
            }
            return;
        }
        ZeroShards zero = model.zeroShards();
        for (ShardLayout.Piece piece : zero.shards().pieceList(zero.communicator().rank())) {
            backend.write(target.get(piece.weight().name()), state.read(kind, piece.globalStart(), piece.length()));
        }
    }

    /**
     * Fills the optimizer's state buffers (whole or a rank's shard) and step count from the
     * checkpoint, whatever world size wrote it.
     */
    static void loadOptimizer(Path checkpoint, Optimizer optimizer, MistralModel model) throws IOException {
        if (!model.isSharded() && !CheckpointState.isSharded(checkpoint)) {
            loadWholeOptimizer(checkpoint, optimizer, model.backend());
            return;
        }
        try (CheckpointState state = CheckpointState.open(checkpoint, model.config())) {
            if (!optimizer.name().equals(state.optimizer())) {
                throw new IllegalArgumentException(checkpoint + " holds " + state.optimizer() + " state but the config asks for optim "
                        + optimizer.name() + "; resume with the optimizer the run started with");
            }
            for (Map.Entry<String, ParameterBuffer> entry : optimizer.state().entrySet()) {
                fill(state, entry.getKey(), entry.getValue(), model);
            }
            optimizer.restoreSteps(state.steps());
        }
    }

    /** One device's optimizer.safetensors into a whole model's optimizer. */
    private static void loadWholeOptimizer(Path checkpoint, Optimizer optimizer, Backend backend) throws IOException {
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
