package spin.model;

import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;

/** One flat tensor (F32, or BF16 for a model's compute copy) laid out by a {@link ParameterLayout}, with a view per weight. */
public final class ParameterBuffer implements ParameterView, AutoCloseable {
    private final ParameterLayout layout;
    private final Tensor flat;
    private final SlotViews views;

    /** Row width of the flat buffer: its shape is [rows, ROW] so 7B-parameter buffers fit int dimensions. */
    private static final int ROW = 4096;

    /** A zero-filled F32 buffer (gradients start here); the tail past the last weight stays zero. */
    public ParameterBuffer(Backend backend, ParameterLayout layout) {
        this(backend, layout, DType.F32);
    }

    /** A zero-filled buffer of {@code dtype}. */
    public ParameterBuffer(Backend backend, ParameterLayout layout, DType dtype) {
        this.layout = layout;
        this.flat = backend.allocate(dtype, Math.toIntExact(allocatedElements(layout.totalSize()) / ROW), ROW);
        this.views = new SlotViews(flat, 0, layout.slots(), "the parameter buffer");
    }

    /** Elements the flat buffer of a layout of {@code size} elements holds: whole rows of {@link #ROW} (what {@link MemoryPlan} counts). */
    static long allocatedElements(long size) {
        return (size + ROW - 1) / ROW * ROW;
    }

    public ParameterLayout layout() {
        return layout;
    }

    /** The whole buffer (zero-padded to whole rows), for optimizers and gradient norms. */
    public Tensor flat() {
        return flat;
    }

    @Override
    public Tensor get(String name) {
        return views.get(name);
    }

    @Override
    public Tensor stacked(String... names) {
        return views.stacked(names);
    }

    @Override
    public void close() {
        flat.close();
    }
}
