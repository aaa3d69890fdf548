package spin.model;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * Paged key/value cache for decoding: per layer one K and one V tensor of {@code blocks * blockSize}
 * rows, handed out to sequences a block at a time. Sequences grow independently (a ragged batch
 * with no padding) and give their blocks back when released.
 */
public final class KvCache implements AutoCloseable {
    private final MistralConfig config;
    private final int blockSize;
    private final int blockCount;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final Deque<Integer> freeBlocks = new ArrayDeque<>();
    private final Map<Integer, Sequence> sequences = new HashMap<>();
    private int nextId;

    private static final class Sequence {
        final List<Integer> blocks = new ArrayList<>();
        int length;
    }

    public KvCache(MistralConfig config, Backend backend, int blockSize, int blockCount) {
        if (blockSize <= 0 || blockCount <= 0) {
            throw new IllegalArgumentException("KV cache needs positive block size and count, got " + blockSize + " x " + blockCount);
        }
        this.config = config;
        this.blockSize = blockSize;
        this.blockCount = blockCount;
        int layers = config.numHiddenLayers();
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        int rows = Math.multiplyExact(blockSize, blockCount);
        for (int l = 0; l < layers; l++) {
            keys[l] = backend.allocate(backend.computeType(), rows, config.numKeyValueHeads(), config.headDim());
            values[l] = backend.allocate(backend.computeType(), rows, config.numKeyValueHeads(), config.headDim());
        }
        for (int b = 0; b < blockCount; b++) {
            freeBlocks.add(b);
        }
    }

    /** Bytes of K and V per cached token, over all layers, held in {@code computeType} (the backend's). */
    public static long bytesPerToken(MistralConfig config, DType computeType) {
        return 2L * config.numHiddenLayers() * config.keyValueDim() * computeType.byteSize();
    }

    /** A cache holding as many blocks as fit in {@code bytes}. */
    public static KvCache withBudget(MistralConfig config, Backend backend, long bytes, int blockSize) {
        long perBlock = bytesPerToken(config, backend.computeType()) * blockSize;
        long blocks = bytes / perBlock;
        if (blocks < 1) {
            throw new IllegalArgumentException("a KV cache budget of " + bytes + " bytes holds no block of " + blockSize
                    + " tokens (" + perBlock + " bytes); raise the budget");
        }
        return new KvCache(config, backend, blockSize, Math.toIntExact(Math.min(blocks, Integer.MAX_VALUE / blockSize)));
    }

    public int blockSize() {
        return blockSize;
    }

    public int freeBlocks() {
        return freeBlocks.size();
    }

    public int blockCount() {
        return blockCount;
    }

    Tensor keys(int layer) {
        return keys[layer];
    }

    Tensor values(int layer) {
        return values[layer];
    }

    /** Starts an empty sequence and returns its id. */
    public int open() {
        int id = nextId++;
        sequences.put(id, new Sequence());
        return id;
    }

    public int length(int id) {
        return sequence(id).length;
    }

    /** Blocks a sequence would need to grow by {@code tokens}. */
    public int blocksNeeded(int id, int tokens) {
        Sequence s = sequence(id);
        int total = (s.length + tokens + blockSize - 1) / blockSize;
        return Math.max(0, total - s.blocks.size());
    }

    /** Whether the free blocks can hold {@code tokens} more tokens of the sequence. */
    public boolean canGrow(int id, int tokens) {
        return blocksNeeded(id, tokens) <= freeBlocks.size();
    }

    /** Reserves blocks for {@code tokens} more tokens; fails without changing anything when they do not fit. */
    void reserve(int id, int tokens) {
        int needed = blocksNeeded(id, tokens);
        if (needed > freeBlocks.size()) {
            throw new IllegalStateException("KV cache full: sequence " + id + " needs " + needed + " blocks, "
                    + freeBlocks.size() + " free");
        }
        Sequence s = sequence(id);
        for (int i = 0; i < needed; i++) {
            s.blocks.add(freeBlocks.poll());
        }
    }

    /** Cache row of position {@code p} of a sequence whose blocks are reserved. */
    int row(int id, int position) {
        return sequence(id).blocks.get(position / blockSize) * blockSize + position % blockSize;
    }

    List<Integer> blocks(int id) {
        return sequence(id).blocks;
    }

    void advance(int id, int tokens) {
        sequence(id).length += tokens;
    }

    /** Ends a sequence and returns its blocks to the pool. */
    public void release(int id) {
        Sequence s = sequences.remove(id);
        if (s != null) {
            freeBlocks.addAll(s.blocks);
        }
    }

    private Sequence sequence(int id) {
        Sequence s = sequences.get(id);
        if (s == null) {
            throw new IllegalArgumentException("no open sequence " + id + " in the KV cache");
        }
        return s;
    }

    @Override
    public void close() {
        for (int l = 0; l < keys.length; l++) {
            keys[l].close();
            values[l].close();
        }
    }
}
