package spin.model;

import java.util.HashMap;
import java.util.Map;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * The training pass's buffers, kept between steps. Allocating and freeing them per step costs a
 * zero-fill, fresh pages and (on the CPU) a handshake with every thread per freed buffer, which
 * for small models is a large share of a step. Each named buffer grows to the largest shape asked
 * for and hands out views of it; closing a view frees nothing.
 *
 * <p>Only one pass may use the workspace at a time: {@link #acquire} gives it to the first caller
 * and fresh allocations (freed on close, as before) to anyone else until it is released, so two
 * live forward states never share memory. Every op writes the whole of its outputs, so no buffer
 * needs zeroing between uses.
 */
final class Workspace implements AutoCloseable {
    private final Backend backend;
    private final Map<String, Tensor> buffers = new HashMap<>();
    private boolean busy;

    Workspace(Backend backend) {
        this.backend = backend;
    }

    /** Buffers for one pass: this workspace's if it is free, else fresh allocations. */
    Buffers acquire() {
        if (busy) {
            return new Buffers(null);
        }
        busy = true;
        return new Buffers(this);
    }

    private Tensor view(String key, DType dtype, int[] shape) {
        long n = Tensor.elementCount(shape);
        Tensor buffer = buffers.get(key);
        if (buffer == null || buffer.dtype() != dtype || buffer.size() < n) {
            if (buffer != null) {
                buffer.close();
            }
            buffer = backend.allocate(dtype, Math.toIntExact(reservedElements(n)));
            buffers.put(key, buffer);
        }
        return buffer.view(0, shape);
    }

    /**
     * Elements a buffer first asked for with {@code n} elements holds: a quarter to spare, so that
     * batches growing a little at a time do not reallocate each step ({@link MemoryPlan} counts it).
     */
    static long reservedElements(long n) {
        return n + n / 4;
    }

    @Override
    public void close() {
        buffers.values().forEach(Tensor::close);
        buffers.clear();
    }

    /** Where one pass takes its buffers from; closing it hands the workspace back. */
    final class Buffers implements AutoCloseable {
        private final Workspace owner;

        private Buffers(Workspace owner) {
            this.owner = owner;
        }

        /** A buffer of {@code shape} under {@code key}; close it when done (a workspace view frees nothing). */
        Tensor take(String key, DType dtype, int... shape) {
            return owner == null ? backend.allocate(dtype, shape) : owner.view(key, dtype, shape);
        }

        @Override
        public void close() {
            if (owner != null) {
                owner.busy = false;
            }
        }
    }
}
