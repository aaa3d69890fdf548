package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/**
 * Deterministic fp64 sums, the global gradient norm, clipping and weighted running sums:
 * kernels/reduce.cu. Sums, the clipped norm and running sums stay on the device; the host values
 * (sums of squares, a global norm over many tensors) are summed on the device and read once.
 */
final class Reductions {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle scratchBytes;
    private final MethodHandle sum;
    private final MethodHandle clipScale;
    private final MethodHandle accumulateWeighted;
    private final Elementwise elementwise;

    Reductions(CudaBackend backend, CudaDevice device, Elementwise elementwise) {
        this.backend = backend;
        this.device = device;
        this.elementwise = elementwise;
        clipScale = device.bind("spin_clip_scale", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_DOUBLE);
        scratchBytes = device.bind("spin_sum_scratch_bytes", JAVA_LONG, ADDRESS);
        sum = device.bind("spin_sum", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_DOUBLE);
        accumulateWeighted = device.bind("spin_accumulate_weighted", ADDRESS, ADDRESS, ADDRESS, JAVA_DOUBLE, JAVA_LONG);
    }

    /** out F64 [1] = sum(in) / divisor, on the device. */
    void sum(Tensor out, Tensor in, double divisor) {
        Operands.requireF32(backend, in);
        requireScalar(out, "out");
        sumInto(out.memory(), in, false, divisor);
    }

    /** Sum of squares of a F32 tensor, read back to the host. */
    double sumOfSquares(Tensor in) {
        Operands.requireF32(backend, in);
        try (Scratch out = new Scratch(device, Double.BYTES)) {
            sumInto(out.memory(), in, true, 1);
            return readDoubles(out.memory())[0];
        }
    }

    /** sqrt of the sum of squares over every tensor: one double read after all the sums. */
    double globalNorm(List<Tensor> tensors) {
        if (tensors.isEmpty()) {
            return 0;
        }
        double total = 0;
        try (Scratch partials = new Scratch(device, (long) Double.BYTES * tensors.size())) {
            for (int i = 0; i < tensors.size(); i++) {
                Operands.requireF32(backend, tensors.get(i));
                sumInto(partials.memory().asSlice((long) i * Double.BYTES, Double.BYTES), tensors.get(i), true, 1);
            }
            double[] values = readDoubles(partials.memory());
            for (int i = 0; i < tensors.size(); i++) {
                total += values[i];
            }
        }
        return Math.sqrt(total);
    }

    /**
     * torch's clip_grad_norm_ with the norm and the factor computed on the device (spin_clip_scale)
     * and applied there (spin_scale_by_device): nothing is read.
     */
    void clipGradNorm(Tensor norm, Tensor grads, double maxNorm) {
        Operands.requireF32(backend, grads);
        try (Scratch sumOfSquares = new Scratch(device, Double.BYTES)) {
            sumInto(sumOfSquares.memory(), grads, true, 1);
            clipBySumOfSquares(norm, grads, sumOfSquares.memory(), maxNorm);
        }
    }

    /** out F64 [1] = sum of squares of a F32 tensor, on the device. */
    void sumOfSquares(Tensor out, Tensor in) {
        Operands.requireF32(backend, in);
        requireScalar(out, "out");
        sumInto(out.memory(), in, true, 1);
    }

    /** clip_grad_norm_ from a sum of squares already on the device (a ZeRO-3 group's, all-reduced). */
    void clipGradNorm(Tensor norm, Tensor grads, Tensor sumOfSquares, double maxNorm) {
        Operands.requireF32(backend, grads);
        requireScalar(sumOfSquares, "sumOfSquares");
        clipBySumOfSquares(norm, grads, sumOfSquares.memory(), maxNorm);
    }

    /**
     * clip_grad_norm_ as {@link #clipFactor} and then spin_scale_by_device with its factor (skipped
     * without a limit, where the factor is 1).
     */
    private void clipBySumOfSquares(Tensor norm, Tensor grads, MemorySegment sumOfSquares, double maxNorm) {
        try (Tensor factor = backend.allocate(DType.F32, 1)) {
            clipFactor(norm, factor, sumOfSquares, maxNorm);
            if (maxNorm > 0) {
                elementwise.scaleByDevice(grads, factor);
            }
        }
    }

    /** clip_grad_norm_'s norm and factor, on the device (spin_clip_scale), unapplied. */
    void clipFactor(Tensor norm, Tensor factor, Tensor sumOfSquares, double maxNorm) {
        requireScalar(sumOfSquares, "sumOfSquares");
        clipFactor(norm, factor, sumOfSquares.memory(), maxNorm);
    }

    /** Without a limit the kernel writes the norm only, and the factor is filled with 1. */
    private void clipFactor(Tensor norm, Tensor factor, MemorySegment sumOfSquares, double maxNorm) {
        requireScalar(norm, "norm");
        Operands.requireDtype(backend, factor, DType.F32, "factor");
        Operands.requireLength(factor, 1);
        boolean clipping = maxNorm > 0;
        var stream = device.compute().handle();
        MemorySegment scale = clipping ? factor.memory() : MemorySegment.NULL;
        device.launch("spin_clip_scale", () -> (int) clipScale.invokeExact(stream, scale, norm.memory(), sumOfSquares, maxNorm));
        if (!clipping) {
            elementwise.fill(factor, 1f);
        }
    }

    /** sums += values * weight, F64 on the device. */
    void accumulateWeighted(Tensor sums, Tensor values, double weight) {
        Operands.requireDtype(backend, sums, DType.F64, "sums");
        Operands.requireDtype(backend, values, DType.F64, "values");
        Operands.requireSameSize(sums, values, "values");
        var stream = device.compute().handle();
        long n = sums.size();
        device.launch("spin_accumulate_weighted", () -> (int) accumulateWeighted.invokeExact(stream, sums.memory(),
                values.memory(), weight, n));
    }

    private void requireScalar(Tensor t, String name) {
        Operands.requireDtype(backend, t, DType.F64, name);
        Operands.requireLength(t, 1);
    }

    /** Queues *out = sum(in) / divisor (of squares when asked); an empty {@code in} gives 0 / divisor. */
    private void sumInto(MemorySegment out, Tensor in, boolean squares, double divisor) {
        long n = in.size();
        long bytes;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(JAVA_LONG);
            device.launch("spin_sum_scratch_bytes", () -> (int) scratchBytes.invokeExact(n, result));
            bytes = result.get(JAVA_LONG, 0);
        }
        try (Scratch scratch = new Scratch(device, bytes)) {
            var stream = device.compute().handle();
            int flag = squares ? 1 : 0;
            MemorySegment input = n == 0 ? MemorySegment.NULL : in.memory();
            device.launch("spin_sum",
                    () -> (int) sum.invokeExact(stream, out, scratch.memory(), input, n, flag, divisor));
        }
    }

    private double[] readDoubles(MemorySegment deviceDoubles) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(deviceDoubles.byteSize(), Double.BYTES);
            device.download(host, deviceDoubles);
            return host.toArray(JAVA_DOUBLE);
        }
    }
}
