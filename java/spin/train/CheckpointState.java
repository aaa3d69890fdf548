package spin.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import spin.backend.BFloat16;
import spin.io.SafetensorsCheckpoint;
import spin.io.SafetensorsDType;
import spin.io.SafetensorsFile;
import spin.io.TensorEntry;
import spin.model.MistralConfig;
import spin.model.ParameterLayout;
import spin.model.ParameterLayout.Slot;
import spin.model.ParameterUnits;
import spin.model.ShardLayout;

/**
 * The fp32 training state a checkpoint holds (master weights, each optimizer state), readable by
 * ranges of the flat parameter layout whatever world size wrote it: this is how a resume at another
 * world size reshards.
 *
 * <p>Two layouts are read. One device's: {@code optimizer.safetensors} with a tensor per state
 * and weight ({@code exp_avg/NAME}; the master weights under {@code master/NAME}, or the model
 * files themselves when those are fp32). A ZeRO-3 group's: {@code zero/manifest.json} (world size,
 * units, shard ranges, optimizer and its step count) and one {@code zero/rank-R-of-N.safetensors}
 * per rank, each holding that rank's flat shard of every state ({@code master}, {@code exp_avg},
 * ...), laid out by {@link ShardLayout} at the writing world size.
 */
final class CheckpointState implements AutoCloseable {
    static final String ZERO_DIR = "zero";
    static final String MANIFEST = "manifest.json";
    static final String MASTER = "master";
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path checkpoint;
    private final ParameterLayout layout;
    private final String optimizer;
    private final long steps;
    /** A group's: its layout and every rank's file; else null. */
    private final ShardLayout written;
    private final List<SafetensorsFile> rankFiles = new ArrayList<>();
    /** One device's: optimizer.safetensors and the model files; else null. */
    private final SafetensorsFile optimizerFile;
    private final SafetensorsCheckpoint modelFiles;

    private CheckpointState(Path checkpoint, ParameterLayout layout, String optimizer, long steps, ShardLayout written,
            SafetensorsFile optimizerFile, SafetensorsCheckpoint modelFiles) {
        this.checkpoint = checkpoint;
        this.layout = layout;
        this.optimizer = optimizer;
        this.steps = steps;
        this.written = written;
        this.optimizerFile = optimizerFile;
        this.modelFiles = modelFiles;
    }

    /** Whether a ZeRO-3 group wrote {@code checkpoint}. */
    static boolean isSharded(Path checkpoint) {
        return Files.isRegularFile(checkpoint.resolve(ZERO_DIR).resolve(MANIFEST));
    }

    static String rankFileName(int rank, int worldSize) {
        return String.format("rank-%05d-of-%05d.safetensors", rank, worldSize);
    }

    /** Opens the state of {@code checkpoint}, whose config.json is {@code config}. */
    static CheckpointState open(Path checkpoint, MistralConfig config) throws IOException {
        ParameterLayout layout = new ParameterLayout(config);
        if (!isSharded(checkpoint)) {
            Path file = checkpoint.resolve(TrainingCheckpoints.OPTIMIZER_FILE);
            SafetensorsFile optimizerFile = SafetensorsFile.open(file);
            try {
                Map<String, String> meta = optimizerFile.metadata();
                return new CheckpointState(checkpoint, layout, meta.get("optimizer"), parseSteps(file, meta.get("steps")), null,
                        optimizerFile, SafetensorsCheckpoint.open(checkpoint));
            } catch (IOException | RuntimeException e) {
                optimizerFile.close();
                throw e;
            }
        }
        Path manifestFile = checkpoint.resolve(ZERO_DIR).resolve(MANIFEST);
        JsonNode manifest = JSON.readTree(manifestFile.toFile());
        int world = manifest.path("world_size").asInt(0);
        if (world < 1) {
            throw new IOException(manifestFile + " names no world_size; the checkpoint is damaged");
        }
        ShardLayout written = new ShardLayout(new ParameterUnits(layout, config), world);
        requireSameUnits(manifestFile, manifest.path("units"), written);
        CheckpointState state = new CheckpointState(checkpoint, layout, manifest.path("optimizer").asText(null),
                manifest.path("steps").asLong(), written, null, null);
        try {
            for (int r = 0; r < world; r++) {
                state.rankFiles.add(SafetensorsFile.open(checkpoint.resolve(ZERO_DIR).resolve(rankFileName(r, world))));
            }
        } catch (IOException | RuntimeException e) {
            state.close();
            throw e;
        }
        return state;
    }

    /** The manifest of a group's checkpoint: what {@link #open} checks the files against. */
    static ObjectNode manifest(ShardLayout shards, String optimizer, long steps, long globalStep) {
        ObjectNode node = JSON.createObjectNode().put("format", "spin zero-3 shards").put("world_size", shards.worldSize())
                .put("shard_elements", shards.shardTotal()).put("optimizer", optimizer).put("steps", steps)
                .put("global_step", globalStep);
        node.put("data_position", "global_step x records_per_step records into the run's data order (trainer_state.json)");
        ArrayNode units = node.putArray("units");
        for (ParameterUnits.Unit unit : shards.units().all()) {
            ObjectNode u = units.addObject().put("name", unit.name()).put("start", unit.start()).put("size", unit.size())
                    .put("shard_size", shards.shardSize(unit.index())).put("shard_offset", shards.shardOffset(unit.index()));
            ArrayNode weights = u.putArray("weights");
            for (Slot s : unit.slots()) {
                ArrayNode shape = weights.addObject().put("name", s.name()).put("offset", s.offset()).putArray("shape");
                for (int d : s.shape()) {
                    shape.add(d);
                }
            }
        }
        return node;
    }

    private static void requireSameUnits(Path manifestFile, JsonNode units, ShardLayout expected) throws IOException {
        List<ParameterUnits.Unit> all = expected.units().all();
        boolean same = units.isArray() && units.size() == all.size();
        for (int u = 0; same && u < all.size(); u++) {
            JsonNode n = units.get(u);
            same = n.path("start").asLong(-1) == all.get(u).start() && n.path("size").asLong(-1) == all.get(u).size()
                    && n.path("shard_size").asLong(-1) == expected.shardSize(u);
        }
        if (!same) {
            throw new IOException(manifestFile + ": its units and shard ranges do not match the checkpoint's config.json at "
                    + "world size " + expected.worldSize() + "; the checkpoint is damaged or of another model");
        }
    }

    private static long parseSteps(Path file, String steps) throws IOException {
        try {
            return Long.parseLong(steps);
        } catch (NumberFormatException e) {
            throw new IOException(file + ": metadata \"steps\" is " + steps + ", not a step count; the checkpoint is damaged");
        }
    }

    String optimizer() {
        return optimizer;
    }

    long steps() {
        return steps;
    }

    /**
     * Elements {@code [start, start + n)} of the flat layout of state {@code kind} ({@link #MASTER}
     * or an optimizer state's name), a range within one weight.
     */
    float[] read(String kind, long start, int n) throws IOException {
        float[] out = new float[n];
        if (written != null) {
            for (int done = 0; done < n; ) {
                ShardLayout.Run run = written.locate(start + done);
                int take = (int) Math.min(n - done, run.length());
                TensorEntry entry = tensor(rankFiles.get(run.rank()), kind);
                copyF32(entry, run.shardIndex(), out, done, take);
                done += take;
            }
            return out;
        }
        Slot slot = slotAt(start);
        long within = start - slot.offset();
        if (within + n > slot.size()) {
            throw new IllegalArgumentException("range " + start + "+" + n + " leaves weight " + slot.name());
        }
        String name = kind + "/" + slot.name();
        if (optimizerFile.contains(name)) {
            copyF32(tensor(optimizerFile, name), within, out, 0, n);
        } else if (kind.equals(MASTER)) {
            TensorEntry entry = modelFiles.tensor(slot.name());
            if (entry.dtype() == SafetensorsDType.BF16) {
                for (int i = 0; i < n; i++) {
                    out[i] = BFloat16.toFloat(entry.data().getAtIndex(LE_SHORT, within + i));
                }
            } else {
                copyF32(entry, within, out, 0, n);
            }
        } else {
            throw new IOException(checkpoint.resolve(TrainingCheckpoints.OPTIMIZER_FILE) + ": optimizer state \"" + name
                    + "\" is missing; the checkpoint is damaged");
        }
        return out;
    }

    private Slot slotAt(long element) {
        for (Slot s : layout.slots()) {
            if (element >= s.offset() && element < s.offset() + s.size()) {
                return s;
            }
        }
        throw new IndexOutOfBoundsException("element " + element + " is past the layout");
    }

    private TensorEntry tensor(SafetensorsFile file, String name) throws IOException {
        if (!file.contains(name)) {
            throw new IOException(file.path() + ": tensor \"" + name + "\" is missing; the checkpoint is damaged");
        }
        return file.tensor(name);
    }

    private static void copyF32(TensorEntry entry, long from, float[] out, int at, int n) throws IOException {
        if (entry.dtype() != SafetensorsDType.F32) {
            throw new IOException("tensor " + entry.name() + " is " + entry.dtype() + ", expected F32");
        }
        if (from + n > entry.elementCount()) {
            throw new IOException("tensor " + entry.name() + " holds " + entry.elementCount() + " elements, fewer than "
                    + (from + n) + "; the checkpoint is damaged");
        }
        MemorySegment.copy(entry.data(), LE_FLOAT, from * Float.BYTES, out, at, n);
    }

    @Override
    public void close() {
        rankFiles.forEach(SafetensorsFile::close);
        if (optimizerFile != null) {
            optimizerFile.close();
        }
        if (modelFiles != null) {
            modelFiles.close();
        }
    }
}
