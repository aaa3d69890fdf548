package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import spin.backend.Operands;
import spin.backend.Tensor;

/** RMSNorm forward (alone or fused with the residual add before it) and backward: kernels/rmsnorm.cu. */
final class RmsNorm {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle forward;
    private final MethodHandle addForward;
    private final MethodHandle scratchBytes;
    private final MethodHandle backward;

    RmsNorm(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_rmsnorm_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                JAVA_INT, JAVA_FLOAT);
        addForward = device.bind("spin_add_rmsnorm_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_FLOAT);
        scratchBytes = device.bind("spin_rmsnorm_backward_scratch_bytes", JAVA_INT, JAVA_INT, ADDRESS);
        backward = device.bind("spin_rmsnorm_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_INT);
    }

    void forward(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, in, weight));
        Operands.requireF32(backend, rstd);
        int c = Math.toIntExact(weight.size()), n = Operands.rows(in, c, "in");
        Operands.requireSameSize(out, in, "in");
        Operands.requireLength(rstd, n);
        var stream = device.compute().handle();
        device.launch("spin_rmsnorm_forward", () -> (int) forward.invokeExact(stream, dtype, out.memory(), rstd.memory(),
                in.memory(), weight.memory(), n, c, eps));
    }

    void addForward(Tensor sum, Tensor normed, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, sum, normed, a, b, weight));
        Operands.requireF32(backend, rstd);
        int c = Math.toIntExact(weight.size()), n = Operands.rows(sum, c, "sum");
        Operands.requireSameSize(sum, a, "a");
        Operands.requireSameSize(sum, b, "b");
        Operands.requireSameSize(normed, sum, "sum");
        Operands.requireLength(rstd, n);
        Operands.requireDisjoint(normed, "normed", sum, a, b);
        var stream = device.compute().handle();
        device.launch("spin_add_rmsnorm_forward", () -> (int) addForward.invokeExact(stream, dtype, sum.memory(),
                normed.memory(), rstd.memory(), a.memory(), b.memory(), weight.memory(), n, c, eps));
    }

    void backward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, dIn, dOut, in, weight));
        Operands.requireF32(backend, dWeight, rstd);
        int c = Math.toIntExact(weight.size()), n = Operands.rows(in, c, "in");
        Operands.requireSameSize(dIn, in, "in");
        Operands.requireSameSize(dOut, in, "in");
        Operands.requireSameSize(dWeight, weight, "weight");
        Operands.requireLength(rstd, n);
        long bytes;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            device.launch("spin_rmsnorm_backward_scratch_bytes", () -> (int) scratchBytes.invokeExact(n, c, out));
            bytes = out.get(JAVA_LONG, 0);
        }
        try (Scratch scratch = new Scratch(device, bytes)) {
            var stream = device.compute().handle();
            device.launch("spin_rmsnorm_backward", () -> (int) backward.invokeExact(stream, dtype, dIn.memory(),
                    dWeight.memory(), scratch.memory(), dOut.memory(), in.memory(), weight.memory(), rstd.memory(), n, c));
        }
    }
}
