package spin.model;

import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import spin.backend.Tensor;
import spin.model.ParameterLayout.Slot;

/**
 * The {@link ParameterView} of a buffer holding layout slots from element {@code base} on: the
 * whole {@link ParameterBuffer} (base 0), or a ZeRO-3 unit gathered into a buffer of its own.
 */
final class SlotViews implements ParameterView {
    private final Tensor buffer;
    private final long base;
    /** What the buffer holds, for error messages ("the parameter buffer", "unit layer.3"). */
    private final String holder;
    private final Map<String, Slot> slots = new HashMap<>();
    private final Map<String, Tensor> views = new HashMap<>();
    private final Map<List<String>, Tensor> stacks = new ConcurrentHashMap<>();

    SlotViews(Tensor buffer, long base, Collection<Slot> slots, String holder) {
        this.buffer = buffer;
        this.base = base;
        this.holder = holder;
        for (Slot s : slots) {
            this.slots.put(s.name(), s);
            views.put(s.name(), buffer.view(s.offset() - base, s.shape()));
        }
    }

    @Override
    public Tensor get(String name) {
        Tensor t = views.get(name);
        if (t == null) {
            throw new IllegalArgumentException(holder + " holds no weight named " + name);
        }
        return t;
    }

    @Override
    public Tensor stacked(String... names) {
        return stacks.computeIfAbsent(List.of(names), this::stack);
    }

    private Tensor stack(List<String> names) {
        if (names.isEmpty()) {
            throw new IllegalArgumentException("a stack needs at least one weight");
        }
        Slot first = slot(names.get(0));
        int columns = first.shape().length == 2 ? first.shape()[1] : -1;
        long rows = 0, end = first.offset();
        for (String name : names) {
            Slot s = slot(name);
            if (s.shape().length != 2 || s.shape()[1] != columns) {
                throw new IllegalArgumentException("cannot stack " + name + " " + Arrays.toString(s.shape()) + " under "
                        + names.get(0) + " " + Arrays.toString(first.shape()) + ": stacked weights are matrices of "
                        + "one column count");
            }
            if (s.offset() != end) {
                throw new IllegalArgumentException("cannot stack " + names + " in " + holder + ": " + name
                        + " does not start where the weight before it ends");
            }
            rows += s.shape()[0];
            end += s.size();
        }
        return buffer.view(first.offset() - base, Math.toIntExact(rows), columns);
    }

    private Slot slot(String name) {
        Slot s = slots.get(name);
        if (s == null) {
            throw new IllegalArgumentException(holder + " holds no weight named " + name);
        }
        return s;
    }
}
