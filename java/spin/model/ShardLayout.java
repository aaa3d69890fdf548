package spin.model;

import java.util.ArrayList;
import java.util.List;
import spin.model.ParameterLayout.Slot;

/**
 * How ZeRO-3 splits each {@link ParameterUnits unit} over {@code worldSize} ranks: the unit is
 * padded with zeros to a multiple of the world size and rank r owns the r-th of its equal parts.
 * A rank's flat shard is its parts of every unit, in unit order; every rank's shard has the same
 * size and the same offsets, so rank r's part of unit u is elements
 * {@code [shardOffset(u), shardOffset(u) + shardSize(u))} of its shard and elements
 * {@code [r * shardSize(u), (r + 1) * shardSize(u))} of the padded unit.
 *
 * <p>A pure function of the model's layout and the world size: a checkpoint's manifest records the
 * world size it was written at, and loading at another one maps each element through two of these.
 */
public final class ShardLayout {
    private final ParameterUnits units;
    private final int worldSize;
    private final long[] shardSize, shardOffset;
    private final long shardTotal;

    public ShardLayout(ParameterUnits units, int worldSize) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be >= 1, got " + worldSize);
        }
        this.units = units;
        this.worldSize = worldSize;
        this.shardSize = new long[units.count()];
        this.shardOffset = new long[units.count()];
        long at = 0;
        for (int u = 0; u < units.count(); u++) {
            shardSize[u] = (units.get(u).size() + worldSize - 1) / worldSize;
            shardOffset[u] = at;
            at += shardSize[u];
        }
        this.shardTotal = at;
    }

    public ParameterUnits units() {
        return units;
    }

    public int worldSize() {
        return worldSize;
    }

    /** Elements of each rank's part of unit {@code u}. */
    public long shardSize(int u) {
        return shardSize[u];
    }

    /** Where unit {@code u}'s part starts in every rank's flat shard. */
    public long shardOffset(int u) {
        return shardOffset[u];
    }

    /** Elements of unit {@code u} padded to a multiple of the world size: what its all-gather moves. */
    public long paddedSize(int u) {
        return shardSize[u] * worldSize;
    }

    /** Elements of every rank's flat shard. */
    public long shardTotal() {
        return shardTotal;
    }

    /** The largest padded unit: the size of a gather buffer. */
    public long largestPadded() {
        long max = 0;
        for (int u = 0; u < units.count(); u++) {
            max = Math.max(max, paddedSize(u));
        }
        return max;
    }

    /**
     * The pieces of the weights rank {@code rank} owns, each a 1-D slot under its weight's HF name
     * at its offset in the rank's shard; weights it owns nothing of are absent, as is the padding.
     */
    public ParameterLayout pieces(int rank) {
        return ParameterLayout.of(pieceList(rank).stream()
                .map(p -> new Slot(p.weight().name(), new int[] {p.length()}, p.shardOffset())).toList(), shardTotal);
    }

    /**
     * One weight's piece in a rank's shard: elements {@code [within, within + length)} of
     * {@code weight} (counted in its flat, row-major order) at {@code shardOffset} of the shard.
     */
    public record Piece(Slot weight, long within, int length, long shardOffset) {
        /** The piece's first element in the whole flat layout. */
        public long globalStart() {
            return weight.offset() + within;
        }
    }

    /** Rank {@code rank}'s pieces in shard order: what {@link #pieces} lays out, with where each comes from. */
    public List<Piece> pieceList(int rank) {
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " is not in a world of " + worldSize);
        }
        List<Piece> pieces = new ArrayList<>();
        for (ParameterUnits.Unit unit : units.all()) {
            int u = unit.index();
            long from = unit.start() + rank * shardSize[u], to = from + shardSize[u];
            for (Slot s : unit.slots()) {
                long lo = Math.max(from, s.offset()), hi = Math.min(to, s.offset() + s.size());
                if (lo < hi) {
                    pieces.add(new Piece(s, lo - s.offset(), Math.toIntExact(hi - lo), shardOffset[u] + lo - from));
                }
            }
        }
        return pieces;
    }

    /**
     * Where the run of elements starting at {@code element} of the flat layout lives: the rank
     * owning it, the index in that rank's shard, and how many elements from there on stay in that
     * rank's part of the unit.
     */
    public Run locate(long element) {
        ParameterUnits.Unit unit = units.containing(element);
        int u = unit.index();
        long within = element - unit.start(), inPart = within % shardSize[u];
        long left = Math.min(shardSize[u] - inPart, unit.size() - within);
        return new Run(Math.toIntExact(within / shardSize[u]), shardOffset[u] + inPart, left);
    }

    /** A run of elements in one rank's shard: see {@link #locate}. */
    public record Run(int rank, long shardIndex, long length) {}
}
