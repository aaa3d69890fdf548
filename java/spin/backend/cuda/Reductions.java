package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;
import spin.backend.Operands;
import spin.backend.Tensor;
import spin.nativebind.DeviceMemory;

/**
 * Deterministic fp64 sums, the global gradient norm and clipping: kernels/reduce.cu.
 * A global norm over many tensors sums on the device and reads one double.
 */
final class Reductions {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle scratchBytes;
    private final MethodHandle sum;
    private final MethodHandle clipScale;
    private final Elementwise elementwise;

    Reductions(CudaBackend backend, CudaDevice device, Elementwise elementwise) {
        this.backend = backend;
        this.device = device;
        this.elementwise = elementwise;
        clipScale = device.bind("spin_clip_scale", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_FLOAT);
        scratchBytes = device.bind("spin_sum_scratch_bytes", JAVA_LONG, ADDRESS);
        sum = device.bind("spin_sum", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_DOUBLE);
    }

    /** Sum (or sum of squares) of a F32 tensor, read back to the host. */
    double sum(Tensor in, boolean squares) {
        Operands.requireF32(backend, in);
        try (Scratch out = new Scratch(device, Double.BYTES)) {
            sumInto(out.memory(), in, squares);
            return readDoubles(out.memory())[0];
        }
    }

    /** sqrt of the sum of squares over every tensor: one double read after all the sums. */
    double globalNorm(List<Tensor> tensors) {
        double total = 0;
        try (Scratch partials = new Scratch(device, (long) Double.BYTES * Math.max(1, tensors.size()))) {
            for (int i = 0; i < tensors.size(); i++) {
                Operands.requireF32(backend, tensors.get(i));
                sumInto(partials.memory().asSlice((long) i * Double.BYTES, Double.BYTES), tensors.get(i), true);
            }
            if (tensors.isEmpty()) {
                return 0;
            }
            double[] values = readDoubles(partials.memory());
            for (int i = 0; i < tensors.size(); i++) {
                total += values[i];
            }
        }
        return Math.sqrt(total);
    }

    /**
     * torch's clip_grad_norm_ with the factor computed and applied on the device (spin_clip_scale,
     * spin_scale_by_device), and one read: the pre-clip norm.
     */
    double clipGradNorm(Tensor grads, double maxNorm) {
        Operands.requireF32(backend, grads);
        try (Scratch squares = new Scratch(device, 2 * Double.BYTES)) {
            MemorySegment sumOfSquares = squares.memory().asSlice(0, Double.BYTES);
            MemorySegment norm = squares.memory().asSlice(Double.BYTES, Double.BYTES);
            sumInto(sumOfSquares, grads, true);
            if (!(maxNorm > 0)) {
                return Math.sqrt(readDoubles(sumOfSquares)[0]);
            }
            try (Tensor factor = backend.allocate(spin.backend.DType.F32, 1)) {
                var stream = device.compute().handle();
                float limit = (float) maxNorm;
                device.launch("spin_clip_scale", () -> (int) clipScale.invokeExact(stream, factor.memory(), norm,
                        sumOfSquares, limit));
                elementwise.scaleByDevice(grads, factor);
                return readDoubles(norm)[0];
            }
        }
    }

    private void sumInto(MemorySegment out, Tensor in, boolean squares) {
        long n = in.size();
        if (n == 0) {
            // spin_sum leaves its output alone for no elements, and pool memory is not zeroed.
            DeviceMemory.zero(device.compute(), out);
            return;
        }
        long bytes;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(JAVA_LONG);
            device.launch("spin_sum_scratch_bytes", () -> (int) scratchBytes.invokeExact(n, result));
            bytes = result.get(JAVA_LONG, 0);
        }
        try (Scratch scratch = new Scratch(device, bytes)) {
            var stream = device.compute().handle();
            int flag = squares ? 1 : 0;
            device.launch("spin_sum",
                    () -> (int) sum.invokeExact(stream, out, scratch.memory(), in.memory(), n, flag, 1.0));
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
