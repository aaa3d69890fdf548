package spin.nativebind;

import java.lang.foreign.MemorySegment;

/**
 * The kernels of libspin_native, queued on a stream. Tensors are device segments (see
 * {@link DeviceMemory}); each must hold at least the bytes its shape needs, which is checked here.
 * Shapes, semantics and the gradient rule are those of {@code spin.backend.Backend}.
 */
public final class CudaKernels {
    private static final long F32 = Float.BYTES;
    private static final long BF16 = Short.BYTES;

    private CudaKernels() {}

    /** out[N,C] = in * rstd * weight[C]; saves rstd[N] = 1 / sqrt(mean(in^2) + eps). */
    public static void rmsnormForward(CudaStream stream, MemorySegment out, MemorySegment rstd, MemorySegment in,
            MemorySegment weight, int rows, int columns, float eps) {
        long elements = (long) rows * columns;
        requireBytes("out", out, elements * F32);
        requireBytes("rstd", rstd, rows * F32);
        requireBytes("in", in, elements * F32);
        requireBytes("weight", weight, columns * F32);
        stream.abi().rmsnormForward(stream.handle(), out, rstd, in, weight, rows, columns, eps);
    }

    /**
     * Device scratch bytes {@link #rmsnormBackward} needs for these shapes, as libspin_native.so
     * computes them. Throws an {@link IllegalStateException} with the reason when the native
     * library is unavailable.
     */
    public static long rmsnormBackwardScratchBytes(int rows, int columns) {
        // Unlike the launchers this takes no stream, whose existence would prove the library loaded.
        return rmsnormBackwardScratchBytes(CudaRuntime.load(), rows, columns);
    }

    /** As {@link #rmsnormBackwardScratchBytes(int, int)}, computed by {@code cuda}'s library. */
    public static long rmsnormBackwardScratchBytes(CudaRuntime cuda, int rows, int columns) {
        return cuda.abi().rmsnormBackwardScratchBytes(rows, columns);
    }

    /**
     * dIn[N,C] = d/d in (overwritten); dWeight[C] += d/d weight (accumulated, in a fixed order).
     * scratch holds {@link #rmsnormBackwardScratchBytes} bytes; its contents are irrelevant.
     */
    public static void rmsnormBackward(CudaStream stream, MemorySegment dIn, MemorySegment dWeight,
            MemorySegment scratch, MemorySegment dOut, MemorySegment in, MemorySegment weight, MemorySegment rstd,
            int rows, int columns) {
        long elements = (long) rows * columns;
        requireBytes("dIn", dIn, elements * F32);
        requireBytes("dWeight", dWeight, columns * F32);
        requireBytes("scratch", scratch, stream.abi().rmsnormBackwardScratchBytes(rows, columns));
        requireBytes("dOut", dOut, elements * F32);
        requireBytes("in", in, elements * F32);
        requireBytes("weight", weight, columns * F32);
        requireBytes("rstd", rstd, rows * F32);
        stream.abi().rmsnormBackward(stream.handle(), dIn, dWeight, scratch, dOut, in, weight, rstd, rows, columns);
    }

    /** out = bf16 bits of in, rounded to nearest even; NaN stays NaN. */
    public static void castF32ToBf16(CudaStream stream, MemorySegment out, MemorySegment in, long count) {
        requireCount(count);
        requireBytes("out", out, count * BF16);
        requireBytes("in", in, count * F32);
        stream.abi().castF32ToBf16(stream.handle(), out, in, count);
    }

    /** out = in widened exactly from bf16 bits to fp32. */
    public static void castBf16ToF32(CudaStream stream, MemorySegment out, MemorySegment in, long count) {
        requireCount(count);
        requireBytes("out", out, count * F32);
        requireBytes("in", in, count * BF16);
        stream.abi().castBf16ToF32(stream.handle(), out, in, count);
    }

    private static void requireCount(long count) {
        if (count < 0) {
            throw new IllegalArgumentException("negative element count " + count);
        }
    }

    private static void requireBytes(String name, MemorySegment tensor, long bytes) {
        if (tensor.byteSize() < bytes) {
            throw new IllegalArgumentException(name + " holds " + tensor.byteSize() + " bytes, needs " + bytes);
        }
    }
}
