package spin.io;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One tensor of a safetensors file: its name, dtype, shape and bytes (little-endian, row-major).
 * When read from a file the data is a zero-copy slice of the mapped file.
 */
public record TensorEntry(String name, SafetensorsDType dtype, long[] shape, MemorySegment data) {

    public long elementCount() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** The shape as ints, for tensors whose dimensions fit (all real model weights do). */
    public int[] intShape() {
        int[] s = new int[shape.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.toIntExact(shape[i]);
        }
        return s;
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
