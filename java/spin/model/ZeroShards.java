package spin.model;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.dist.Communicator;

/**
 * One rank's ZeRO-3 state: its fp32 shard of the master weights and of the gradients
 * ({@link ShardLayout}), and the buffers a pass borrows a unit's full weights and gradients in.
 *
 * <h2>Weights</h2>
 * {@link #weights} gathers a unit's weights in the compute dtype into one of a few reusable
 * buffers: each rank rounds its own part (or copies it, in fp32) into its slice of the buffer and
 * an in-place all-gather fills the rest, so every rank holds the same bits a single device's
 * compute copy holds. The caller names the unit it will want next, whose gather is issued at once
 * (on the communicator's stream, so on a GPU it overlaps the current unit's compute); a gathered
 * unit stays until its buffer is needed for another, and {@link #release} lets it be reused.
 * Handing out {@link #master()} marks every gathered copy stale (whoever holds the master shard may
 * change it: a load, an optimizer step), so a changed weight is never used stale.
 *
 * <h2>Gradients</h2>
 * {@link #unitGradients} lends a zeroed fp32 buffer of the whole unit for a backward to accumulate
 * into; {@link #reduceGradients} reduce-scatters it (the rank-order sum over ranks) and adds this
 * rank's part to its gradient shard. The reduce-scatter is left in flight while the next unit's
 * backward runs (on a GPU they overlap) and finished (waited for, added, its buffer freed) when
 * the next one is issued or the gradient shard is asked for, so additions to the shard keep their
 * order. With one micro-batch per rank, that makes the shard hold
 * exactly the sum a single device accumulating the ranks' micro-batches in rank order holds.
 *
 * <p>Every rank must make the same calls in the same order (they are collectives).
 */
public final class ZeroShards implements AutoCloseable {
    /** Gathered units kept at once: the unit computing, the one prefetched, and the tied embedding beside the head. */
    static final int GATHER_BUFFERS = 3;

    private final Communicator communicator;
    private final Backend backend;
    private final ShardLayout shards;
    private final DType computeType;
    private final ParameterBuffer master;
    private ParameterBuffer gradients;
    private final List<Gathered> gathered = new ArrayList<>();
    private final ArrayDeque<Tensor> freeGradientBuffers = new ArrayDeque<>();
    private final Map<Integer, Tensor> lentGradients = new HashMap<>();
    private final List<Tensor> gradientBuffers = new ArrayList<>();
    /** The last reduce-scatter issued and not yet finished, or null. */
    private InFlight inFlight;
    private record InFlight(int unit, Tensor buffer, Communicator.Pending pending) {}
    private long useCounter;

    /** A gather buffer and the unit it holds (-1: none). */
    private final class Gathered {
        final Tensor buffer;
        int unit = -1;
        int pins;
        long lastUse;
        ParameterView views;
        /** The all-gather that fills this buffer, until a pass first uses it. */
        Communicator.Pending pending;

        Gathered(Tensor buffer) {
            this.buffer = buffer;
        }
    }

    public ZeroShards(ParameterLayout layout, MistralConfig config, Communicator communicator, DType computeType) {
        this.communicator = communicator;
        this.backend = communicator.backend();
        this.shards = new ShardLayout(new ParameterUnits(layout, config), communicator.worldSize());
        this.computeType = computeType;
        this.master = new ParameterBuffer(backend, shards.pieces(communicator.rank()));
    }

    public Communicator communicator() {
        return communicator;
    }

    public ShardLayout shards() {
        return shards;
    }

    /**
     * This rank's fp32 master weights: pieces of each weight under its HF name. Handing it out
     * marks every gathered unit stale.
     */
    public ParameterBuffer master() {
        for (Gathered g : gathered) {
            if (g.pins > 0) {
                throw new IllegalStateException("the master shard was asked for while unit " + g.unit + " is in use by a pass");
            }
            settle(g);
            g.unit = -1;
        }
        return master;
    }

    /** This rank's fp32 gradient shard, laid out like {@link #master()}; allocated zeroed on first use. */
    public ParameterBuffer gradients() {
        finishReduction();
        return gradientShard();
    }

    private ParameterBuffer gradientShard() {
        if (gradients == null) {
            gradients = new ParameterBuffer(backend, master.layout());
        }
        return gradients;
    }

    /**
     * Unit {@code unit}'s full weights in the compute dtype, gathered unless a buffer holds them,
     * pinned until {@link #release}; then issues the gather of {@code next} (-1: none) when a
     * buffer is free for it.
     */
    ParameterView weights(int unit, int next) {
        Gathered g = gather(unit);
        settle(g);
        g.pins++;
        if (next >= 0 && holding(next) == null) {
            Gathered spare = freeBuffer();
            if (spare != null) {
                fill(spare, next);
            }
        }
        return g.views;
    }

    /** Unpins {@code unit}'s gathered weights, so that their buffer may take another unit. */
    void release(int unit) {
        Gathered g = holding(unit);
        if (g == null || g.pins == 0) {
            throw new IllegalStateException("unit " + unit + " was not acquired");
        }
        g.pins--;
    }

    /** A zeroed fp32 buffer of unit {@code unit}'s full gradients, lent until {@link #reduceGradients}. */
    ParameterView unitGradients(int unit) {
        Tensor buffer = lentGradients.get(unit);
        if (buffer == null) {
            buffer = freeGradientBuffers.isEmpty() ? allocateGradientBuffer() : freeGradientBuffers.pop();
            backend.fill(buffer.view(0, Math.toIntExact(shards.paddedSize(unit))), 0f);
            lentGradients.put(unit, buffer);
        }
        return views(shards.units().get(unit), buffer);
    }

    /**
     * Reduce-scatters unit {@code unit}'s lent gradients, adds this rank's part of the sum to the
     * gradient shard, and takes the buffer back.
     */
    void reduceGradients(int unit) {
        Tensor buffer = lentGradients.remove(unit);
        if (buffer == null) {
            throw new IllegalStateException("unit " + unit + " has no gradients lent");
        }
        finishReduction();
        int part = Math.toIntExact(shards.shardSize(unit));
        Tensor whole = buffer.view(0, Math.toIntExact(shards.paddedSize(unit)));
        Tensor mine = buffer.view((long) communicator.rank() * part, part);
        inFlight = new InFlight(unit, buffer, communicator.reduceScatterAsync(mine, whole));
    }

    /** Finishes the reduce-scatter in flight, if any: waits for it, adds this rank's part to the shard, frees its buffer. */
    private void finishReduction() {
        if (inFlight == null) {
            return;
        }
        InFlight done = inFlight;
        inFlight = null;
        done.pending().await();
        int part = Math.toIntExact(shards.shardSize(done.unit()));
        Tensor mine = done.buffer().view((long) communicator.rank() * part, part);
        backend.accumulate(gradientShard().flat().view(shards.shardOffset(done.unit()), part), mine);
        freeGradientBuffers.push(done.buffer());
    }

    /**
     * Unit {@code unit}'s whole fp32 master weights gathered from every rank (a collective), read
     * to the host where {@code read} (the rank that writes them), else only taken part in (null).
     */
    public float[] gatherMaster(int unit, boolean read) {
        int part = Math.toIntExact(shards.shardSize(unit));
        try (Tensor whole = backend.allocate(DType.F32, Math.toIntExact(shards.paddedSize(unit)))) {
            Tensor mine = whole.view((long) communicator.rank() * part, part);
            backend.copy(mine, master.flat().view(shards.shardOffset(unit), part));
            communicator.allGather(whole, mine);
            return read ? backend.read(whole.view(0, Math.toIntExact(shards.units().get(unit).size()))) : null;
        }
    }

    private Tensor allocateGradientBuffer() {
        Tensor t = backend.allocate(DType.F32, Math.toIntExact(shards.largestPadded()));
        gradientBuffers.add(t);
        return t;
    }

    private Gathered holding(int unit) {
        for (Gathered g : gathered) {
            if (g.unit == unit) {
                return g;
            }
        }
        return null;
    }

    private Gathered gather(int unit) {
        Gathered g = holding(unit);
        if (g == null) {
            g = freeBuffer();
            if (g == null) {
                throw new IllegalStateException("every gather buffer holds a unit in use");
            }
            fill(g, unit);
        }
        g.lastUse = ++useCounter;
        return g;
    }

    /** An unpinned buffer, a new one while fewer than {@link #GATHER_BUFFERS} exist, else the least recently used. */
    private Gathered freeBuffer() {
        if (gathered.size() < GATHER_BUFFERS) {
            Gathered g = new Gathered(backend.allocate(computeType, Math.toIntExact(shards.largestPadded())));
            gathered.add(g);
            return g;
        }
        Gathered best = null;
        for (Gathered g : gathered) {
            if (g.pins == 0 && (best == null || g.lastUse < best.lastUse)) {
                best = g;
            }
        }
        return best;
    }

    /** Orders later work after the all-gather that filled {@code g}, if it is still pending. */
    private static void settle(Gathered g) {
        if (g.pending != null) {
            g.pending.await();
            g.pending = null;
        }
    }

    /**
     * Issues the gather of unit {@code unit} into {@code g}: this rank's part into its slice, then
     * the in-place all-gather, left pending until a pass uses the unit (a prefetch overlaps compute).
     */
    private void fill(Gathered g, int unit) {
        // The buffer's previous gather must be done before this one's part is written into it.
        settle(g);
        int part = Math.toIntExact(shards.shardSize(unit));
        Tensor mine = g.buffer.view((long) communicator.rank() * part, part);
        Tensor own = master.flat().view(shards.shardOffset(unit), part);
        if (computeType == DType.F32) {
            backend.copy(mine, own);
        } else {
            backend.cast(mine, own);
        }
        g.pending = communicator.allGatherAsync(g.buffer.view(0, Math.toIntExact(shards.paddedSize(unit))), mine);
        g.unit = unit;
        g.lastUse = ++useCounter;
        g.views = views(shards.units().get(unit), g.buffer);
    }

    /** Views of {@code unit}'s weights, of their full shapes, in a buffer holding the unit from its element 0. */
    private static ParameterView views(ParameterUnits.Unit unit, Tensor buffer) {
        return new SlotViews(buffer, unit.start(), unit.slots(), "unit " + unit.name());
    }

    @Override
    public void close() {
        // Nothing in flight may still read or write a buffer handed back to the pool.
        finishReduction();
        gathered.forEach(ZeroShards::settle);
        master.close();
        if (gradients != null) {
            gradients.close();
        }
        gathered.forEach(g -> g.buffer.close());
        gradientBuffers.forEach(Tensor::close);
    }
}
