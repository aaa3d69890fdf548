package spin.backend;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A typed, shaped, contiguous (row-major) block of memory owned by one {@link Backend}.
 *
 * <p>For the CPU backend {@link #memory()} is off-heap host memory. For a device backend it is a
 * segment whose address is the device pointer: it carries address and size only and must never be
 * dereferenced on the host.
 *
 * <p>A tensor made by {@link Backend#allocate} owns its memory and frees it on {@link #close()}.
 * A {@link #view} shares its parent's memory; closing a view does nothing.
 */
public final class Tensor implements AutoCloseable {
    private final Backend backend;
    private final DType dtype;
    private final int[] shape;
    private final long size;
    private final MemorySegment memory;
    private final Runnable release;
    private boolean closed;

    /** For backends: wraps memory holding exactly {@code product(shape)} elements. */
    public Tensor(Backend backend, DType dtype, int[] shape, MemorySegment memory, Runnable release) {
        this.backend = backend;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.size = elementCount(shape);
        if (memory.byteSize() != size * dtype.byteSize()) {
            throw new IllegalArgumentException("memory of " + memory.byteSize() + " bytes cannot hold "
                    + dtype + Arrays.toString(shape));
        }
        this.memory = memory;
        this.release = release;
    }

    public static long elementCount(int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public Backend backend() {
        return backend;
    }

    public DType dtype() {
        return dtype;
    }

    public int rank() {
        return shape.length;
    }

    /** Dimension {@code i}; negative {@code i} counts from the end. */
    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public int[] shape() {
        return shape.clone();
    }

    /** Number of elements. */
    public long size() {
        return size;
    }

    public long byteSize() {
        return memory.byteSize();
    }

    public MemorySegment memory() {
        if (closed) {
            throw new IllegalStateException("tensor " + this + " was closed");
        }
        return memory;
    }

    /** A tensor over {@code product(shape)} elements of this one, starting at element {@code offset}. */
    public Tensor view(long offset, int... viewShape) {
        long n = elementCount(viewShape);
        if (offset < 0 || offset + n > size) {
            throw new IndexOutOfBoundsException("view of " + n + " elements at " + offset + " exceeds " + this);
        }
        long bytes = dtype.byteSize();
        return new Tensor(backend, dtype, viewShape, memory().asSlice(offset * bytes, n * bytes), null);
    }

    /** The same elements under another shape with the same element count. */
    public Tensor reshape(int... newShape) {
        if (elementCount(newShape) != size) {
            throw new IllegalArgumentException("cannot reshape " + this + " to " + Arrays.toString(newShape));
        }
        return view(0, newShape);
    }

    @Override
    public void close() {
        if (!closed && release != null) {
            closed = true;
            release.run();
        }
    }

    @Override
    public String toString() {
        return dtype + Arrays.toString(shape) + "@" + backend.name();
    }
}
