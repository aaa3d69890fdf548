package spin.model;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import spin.backend.BFloat16;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.dist.Communicator;
import spin.io.AtomicFiles;
import spin.io.SafetensorsCheckpoint;
import spin.io.SafetensorsDType;
import spin.io.SafetensorsException;
import spin.io.SafetensorsWriter;
import spin.io.TensorEntry;

/** HF model directories in and out of a {@link MistralModel}, and HF's random initialisation. */
public final class ModelCheckpoint {
    /** HF's default shard size for save_pretrained. */
    public static final long DEFAULT_SHARD_BYTES = 5L * 1000 * 1000 * 1000;

    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final double GIB = 1L << 30;

    private ModelCheckpoint() {}

    /** Storage type of a written checkpoint. */
    public enum StorageType {
        F32("float32", SafetensorsDType.F32),
        BF16("bfloat16", SafetensorsDType.BF16);

        final String torchName;
        final SafetensorsDType dtype;

        StorageType(String torchName, SafetensorsDType dtype) {
            this.torchName = torchName;
            this.dtype = dtype;
        }
    }

    /**
     * Loads config.json and the weights of an HF Mistral directory into a new model on {@code backend}.
     * The files are checked against config.json (every weight present, none unexpected, each of the
     * shape config.json implies) and the model's size against the machine's memory before anything
     * is allocated, so a wrong config.json is refused by name rather than by an allocation failure.
     */
    public static MistralModel load(Path dir, Backend backend) throws IOException {
        return load(dir, backend, false);
    }

    /**
     * {@link #load} for a model that only runs forward passes (generation, scoring, chat):
     * {@link MistralModel#forInference}, the weights streamed straight into the BF16 compute copy,
     * so a BF16 device never holds the fp32 master (2 bytes per parameter instead of 6, also while
     * loading); its outputs have the bits of the ordinary model's.
     */
    public static MistralModel loadForInference(Path dir, Backend backend) throws IOException {
        return load(dir, backend, true);
    }

    private static MistralModel load(Path dir, Backend backend, boolean inference) throws IOException {
        MistralConfig config = MistralConfig.read(dir);
        try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir)) {
            ParameterLayout layout = checkTensors(dir, checkpoint, config);
            requireMemoryFor(dir, layout, backend, inference);
            MistralModel model = inference ? MistralModel.forInference(config, backend) : new MistralModel(config, backend);
            try {
                ParameterBuffer target = model.weightsToLoad();
                for (ParameterLayout.Slot slot : layout.slots()) {
                    TensorEntry entry = checkpoint.tensor(slot.name());
                    Tensor weight = target.get(slot.name());
                    switch (entry.dtype()) {
                        // Straight from the mapped file to the backend, converted there.
                        case F32 -> backend.upload(weight, entry.data(), DType.F32);
                        case BF16 -> backend.upload(weight, entry.data(), DType.BF16);
                        default -> backend.write(weight, widen(entry, dir));
                    }
                }
            } catch (IOException | RuntimeException e) {
                model.close();
                throw e;
            }
            return model;
        }
    }

    /**
     * Loads this rank's ZeRO-3 shard of an HF Mistral directory: {@link #load}'s checks, then only
     * the pieces of each weight the rank owns leave the mapped files. Every rank of
     * {@code communicator}'s group loads its own (no collective runs).
     */
    public static MistralModel loadSharded(Path dir, Communicator communicator) throws IOException {
        MistralConfig config = MistralConfig.read(dir);
        Backend backend = communicator.backend();
        try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir)) {
            ParameterLayout layout = checkTensors(dir, checkpoint, config);
            MistralModel model = MistralModel.sharded(config, communicator);
            try {
                ZeroShards zero = model.zeroShards();
                ParameterBuffer master = zero.master();
                for (ShardLayout.Piece piece : zero.shards().pieceList(communicator.rank())) {
                    TensorEntry entry = checkpoint.tensor(piece.weight().name());
                    Tensor target = master.get(piece.weight().name());
                    switch (entry.dtype()) {
                        case F32, BF16 -> {
                            long bytes = entry.dtype() == SafetensorsDType.F32 ? Float.BYTES : Short.BYTES;
                            MemorySegment part = entry.data().asSlice(piece.within() * bytes, piece.length() * bytes);
                            backend.upload(target, part, entry.dtype() == SafetensorsDType.F32 ? DType.F32 : DType.BF16);
                        }
                        default -> backend.write(target, java.util.Arrays.copyOfRange(widen(entry, dir),
                                Math.toIntExact(piece.within()), Math.toIntExact(piece.within() + piece.length())));
                    }
                }
            } catch (IOException | RuntimeException e) {
                model.close();
                throw e;
            }
            return model;
        }
    }

    /**
     * The layout config.json implies, once the files are known to hold exactly its weights: every
     * one present, none unexpected, each of its shape. Nothing is allocated.
     */
    public static ParameterLayout checkTensors(Path dir, SafetensorsCheckpoint checkpoint, MistralConfig config)
            throws SafetensorsException {
        // A num_hidden_layers far beyond the files would build (and list) a layout of millions of names.
        long expected = 9L * config.numHiddenLayers() + 2 + (config.tieWordEmbeddings() ? 0 : 1);
        if (expected > 2L * checkpoint.tensors().size() + 9) {
            throw new SafetensorsException(dir + ": config.json implies " + expected + " weights (num_hidden_layers "
                    + config.numHiddenLayers() + ") but the safetensors files hold " + checkpoint.tensors().size()
                    + "; fix config.json or use the weights it belongs to");
        }
        ParameterLayout layout = new ParameterLayout(config);
        TreeSet<String> unexpected = new TreeSet<>(checkpoint.tensors().keySet());
        List<String> missing = new ArrayList<>();
        for (ParameterLayout.Slot slot : layout.slots()) {
            unexpected.remove(slot.name());
            if (!checkpoint.tensors().containsKey(slot.name())) {
                missing.add(slot.name());
                continue;
            }
            TensorEntry entry = checkpoint.tensor(slot.name());
            if (!java.util.Arrays.equals(entry.intShape(), slot.shape())) {
                throw new SafetensorsException(dir + ": tensor \"" + slot.name() + "\" has shape "
                        + java.util.Arrays.toString(entry.shape()) + " but config.json implies "
                        + java.util.Arrays.toString(slot.shape()) + "; fix config.json or use the weights it belongs to");
            }
        }
        // Old checkpoints carry rotary buffers; they are recomputed from rope_theta.
        unexpected.removeIf(name -> name.endsWith("rotary_emb.inv_freq"));
        if (config.tieWordEmbeddings()) {
            unexpected.remove(ParameterLayout.Names.LM_HEAD);
        }
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new SafetensorsException(dir + ": weights do not match config.json: missing " + missing
                    + ", unexpected " + unexpected);
        }
        return layout;
    }

    /** The fp32 parameters, and their compute copy where the backend computes in another dtype, must fit in its memory. */
    private static void requireMemoryFor(Path dir, ParameterLayout layout, Backend backend, boolean inference) {
        DType compute = backend.computeType();
        long copy = compute == DType.F32 ? 0 : compute.byteSize();
        boolean masterKept = !inference || copy == 0;  // an inference model holds the compute copy alone
        long needed = layout.totalSize() * ((masterKept ? Float.BYTES : 0) + copy); // no overflow: every weight's bytes exist in the files
        long total = backend.memoryBytes();
        if (needed > total) {
            String copyName = compute.name().toLowerCase(java.util.Locale.ROOT);
            throw new IllegalArgumentException(String.format("%s: the model's %,d parameters need %.1f GiB as %s but %s has "
                    + "%.1f GiB of memory; run it on a machine where it fits", dir, layout.totalSize(), needed / GIB,
                    !masterKept ? copyName : copy == 0 ? "fp32" : "fp32 with a " + copyName + " copy to compute with",
                    backend.name(), total / GIB));
        }
    }

    /** The floats of a weight stored in a dtype backends do not take directly (F16), widened on the host. */
    private static float[] widen(TensorEntry entry, Path dir) throws SafetensorsException {
        MemorySegment data = entry.data();
        int n = Math.toIntExact(entry.elementCount());
        float[] out = new float[n];
        switch (entry.dtype()) {
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(data.getAtIndex(LE_SHORT, i));
                }
            }
            default -> throw new SafetensorsException(dir + ": weight \"" + entry.name() + "\" is " + entry.dtype()
                    + "; weights must be F32, BF16 or F16");
        }
        return out;
    }

    /** Writes config.json, generation_config.json and the weights (HF names) into {@code dir}; each file atomically. */
    public static void save(MistralModel model, Path dir, StorageType storage, long maxShardBytes) throws IOException {
        if (model.isSharded()) {
            saveSharded(model, dir, storage, maxShardBytes);
            return;
        }
        Backend backend = model.backend();
        write(model.config(), dir, storage, maxShardBytes, slot -> backend.read(model.parameters().get(slot.name())));
    }

    /**
     * A ZeRO-3 group's {@link #save}, a collective of every rank: each unit's master weights are
     * gathered in unit order and rank 0 writes them (the same files one device writes); the other
     * ranks write nothing.
     */
    private static void saveSharded(MistralModel model, Path dir, StorageType storage, long maxShardBytes) throws IOException {
        ZeroShards zero = model.zeroShards();
        ParameterUnits units = zero.shards().units();
        if (zero.communicator().rank() != 0) {
            for (int u = 0; u < units.count(); u++) {
                zero.gatherMaster(u, false);
            }
            return;
        }
        // Tensors are written in layout order, which is unit order: each unit is gathered once, when its first weight is due.
        int[] gathered = {-1};
        float[][] unitValues = {null};
        write(model.config(), dir, storage, maxShardBytes, slot -> {
            ParameterUnits.Unit unit = units.containing(slot.offset());
            while (gathered[0] < unit.index()) {
                gathered[0]++;
                unitValues[0] = zero.gatherMaster(gathered[0], gathered[0] == unit.index());
            }
            int from = Math.toIntExact(slot.offset() - unit.start());
            return java.util.Arrays.copyOfRange(unitValues[0], from, from + Math.toIntExact(slot.size()));
        });
        while (gathered[0] < units.count() - 1) {
            zero.gatherMaster(++gathered[0], false);
        }
    }

    /**
     * Writes a randomly initialised checkpoint straight to disk, one tensor at a time, so that even
     * a 7B model needs no more memory than its largest tensor. Same values as {@link #initialize}.
     */
    public static void writeInitialized(MistralConfig config, Path dir, StorageType storage, long seed, long maxShardBytes)
            throws IOException {
        write(config, dir, storage, maxShardBytes, slot -> initialValues(slot, config.initializerRange(), seed));
    }

    private static void write(MistralConfig config, Path dir, StorageType storage, long maxShardBytes,
            java.util.function.Function<ParameterLayout.Slot, float[]> values) throws IOException {
        List<ParameterLayout.Slot> slots = new ParameterLayout(config).slots();
        List<SafetensorsWriter.TensorHeader> headers = new ArrayList<>();
        for (ParameterLayout.Slot slot : slots) {
            headers.add(new SafetensorsWriter.TensorHeader(slot.name(), storage.dtype,
                    java.util.Arrays.stream(slot.shape()).asLongStream().toArray()));
        }
        SafetensorsCheckpoint.write(dir, headers, (index, target) -> {
            float[] v = values.apply(slots.get(index));
            for (int i = 0; i < v.length; i++) {
                if (storage == StorageType.F32) {
                    target.setAtIndex(LE_FLOAT, i, v[i]);
                } else {
                    target.setAtIndex(LE_SHORT, i, BFloat16.fromFloat(v[i]));
                }
            }
        }, maxShardBytes);
        AtomicFiles.writeString(dir.resolve(MistralConfig.FILE_NAME), config.toJson(storage.torchName));
        AtomicFiles.writeString(dir.resolve(MistralConfig.GENERATION_FILE_NAME), config.generationConfigJson());
    }

    /**
     * HF's initialisation for Mistral: every linear and embedding weight from normal(0,
     * initializer_range), every RMSNorm weight 1. Deterministic for a seed.
     */
    public static void initialize(MistralModel model, long seed) {
        ParameterBuffer target = model.weightsToLoad();  // an inference model's bf16 copy takes the rounded values
        List<ParameterLayout.Slot> slots = target.layout().slots();
        float std = model.config().initializerRange();
        // Every weight draws from its own stream, so weights are drawn in parallel (Mistral-7B is 7e9
        // draws: minutes on one core) and written in order; at most `window` arrays exist at a time.
        int window = Math.min(8, Runtime.getRuntime().availableProcessors());
        try (ExecutorService workers = Executors.newFixedThreadPool(window, Thread.ofPlatform().daemon().factory())) {
            ArrayDeque<Future<float[]>> drawn = new ArrayDeque<>();
            int next = 0;
            for (ParameterLayout.Slot slot : slots) {
                while (drawn.size() < window && next < slots.size()) {
                    ParameterLayout.Slot ahead = slots.get(next++);
                    drawn.add(workers.submit(() -> initialValues(ahead, std, seed)));
                }
                model.backend().write(target.get(slot.name()), drawn.poll().get());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while initialising the weights", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("drawing the initial weights failed", e.getCause());
        }
    }

    /** Each weight draws from its own stream (seed and name), so values do not depend on the write order. */
    private static float[] initialValues(ParameterLayout.Slot slot, float std, long seed) {
        float[] values = new float[Math.toIntExact(slot.size())];
        if (slot.shape().length == 1) {
            java.util.Arrays.fill(values, 1f);
            return values;
        }
        SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + slot.name().hashCode());
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (rng.nextGaussian() * std);
        }
        return values;
    }
}
