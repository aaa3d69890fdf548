package spin.model;

import java.util.ArrayList;
import java.util.List;
import spin.model.ParameterLayout.Names;
import spin.model.ParameterLayout.Slot;

/**
 * The ZeRO-3 units of a model: the embedding, each decoder layer, and the final norm with the
 * lm_head (the lm_head is the embedding's when tied). Each is a contiguous range of the flat
 * parameter layout (its order keeps a unit's weights together), gathered whole before a pass uses
 * it and reduce-scattered whole after its backward.
 */
public final class ParameterUnits {

    /** One unit: its index, elements {@code [start, start + size)} of the flat layout, and its weights. */
    public record Unit(int index, String name, long start, long size, List<Slot> slots) {}

    private final List<Unit> units;
    private final int layers;

    public ParameterUnits(ParameterLayout layout, MistralConfig config) {
        this.layers = config.numHiddenLayers();
        List<Unit> all = new ArrayList<>();
        all.add(unit(layout, 0, "embedding", List.of(Names.EMBED)));
        for (int l = 0; l < layers; l++) {
            all.add(unit(layout, 1 + l, "layer " + l, List.of(Names.inputNorm(l), Names.q(l), Names.k(l), Names.v(l), Names.o(l),
                    Names.postAttentionNorm(l), Names.gate(l), Names.up(l), Names.down(l))));
        }
        all.add(unit(layout, layers + 1, "head", config.tieWordEmbeddings() ? List.of(Names.FINAL_NORM)
                : List.of(Names.FINAL_NORM, Names.LM_HEAD)));
        this.units = List.copyOf(all);
    }

    private static Unit unit(ParameterLayout layout, int index, String name, List<String> names) {
        List<Slot> slots = names.stream().map(layout::slot).toList();
        long start = slots.getFirst().offset();
        long end = start;
        for (Slot s : slots) {
            if (s.offset() != end) {
                throw new IllegalStateException("unit " + name + " is not contiguous in the layout at " + s.name());
            }
            end += s.size();
        }
        return new Unit(index, name, start, end - start, slots);
    }

    public List<Unit> all() {
        return units;
    }

    public Unit get(int index) {
        return units.get(index);
    }

    public int count() {
        return units.size();
    }

    /** Index of the embedding's unit. */
    public static int embedding() {
        return 0;
    }

    /** Index of decoder layer {@code l}'s unit. */
    public static int layer(int l) {
        return 1 + l;
    }

    /** Index of the final norm + lm_head unit. */
    public int head() {
        return layers + 1;
    }

    /** The unit holding element {@code element} of the flat layout. */
    public Unit containing(long element) {
        for (Unit unit : units) {
            if (element >= unit.start() && element < unit.start() + unit.size()) {
                return unit;
            }
        }
        throw new IndexOutOfBoundsException("element " + element + " is past the layout's last unit");
    }

    /** Elements of the largest unit. */
    public long largest() {
        return units.stream().mapToLong(Unit::size).max().orElseThrow();
    }
}
