package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/**
 * Rotary position embedding on F32 or BF16 activations and its backward (the rotation by the
 * negative angle): kernels/rope.cu.
 */
final class Rope {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle forward;
    private final MethodHandle backward;
    private final MethodHandle qkvForward;
    private final MethodHandle qkvBackward;

    Rope(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_rope_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT);
        backward = device.bind("spin_rope_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT);
        qkvForward = device.bind("spin_qkv_rope_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT);
        qkvBackward = device.bind("spin_qkv_rope_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT);
    }

    void forward(Tensor out, Tensor in, Tensor positions, float theta) {
        rotate("spin_rope_forward", forward, out, in, positions, theta);
    }

    void backward(Tensor dIn, Tensor dOut, Tensor positions, float theta) {
        rotate("spin_rope_backward", backward, dIn, dOut, positions, theta);
    }

    void qkvForward(Tensor q, Tensor k, Tensor v, Tensor qkv, Tensor positions, float theta) {
        QkvShape s = qkvShape(qkv, q, k, v, positions);
        launchQkv("spin_qkv_rope_forward", qkvForward, q.memory(), k.memory(), v.memory(), qkv.memory(), positions, s,
                theta);
    }

    void qkvBackward(Tensor dqkv, Tensor dq, Tensor dk, Tensor dv, Tensor positions, float theta) {
        QkvShape s = qkvShape(dqkv, dq, dk, dv, positions);
        launchQkv("spin_qkv_rope_backward", qkvBackward, dqkv.memory(), dq.memory(), dk.memory(), dv.memory(), positions,
                s, theta);
    }

    /** The native dtype and sizes of the fused split's operands. */
    private record QkvShape(int dtype, int b, int t, int h, int kvh, int d) {}

    private QkvShape qkvShape(Tensor stacked, Tensor q, Tensor k, Tensor v, Tensor positions) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, stacked, q, k, v));
        Operands.requireDtype(backend, positions, DType.I32, "positions");
        int[] s = Operands.qkvShape(q, k, v, stacked, positions);
        return new QkvShape(dtype, s[0], s[1], s[2], s[3], s[4]);
    }

    /** The four tensors in the entry point's order (forward: q, k, v, qkv; backward: dqkv, dq, dk, dv). */
    private void launchQkv(String name, MethodHandle kernel, MemorySegment first, MemorySegment second,
            MemorySegment third, MemorySegment fourth, Tensor positions, QkvShape s, float theta) {
        var stream = device.compute().handle();
        device.launch(name, () -> (int) kernel.invokeExact(stream, s.dtype(), first, second, third, fourth,
                positions.memory(), s.b(), s.t(), s.h(), s.kvh(), s.d(), theta));
    }

    private void rotate(String name, MethodHandle kernel, Tensor out, Tensor in, Tensor positions, float theta) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, in));
        Operands.requireDtype(backend, positions, DType.I32, "positions");
        Operands.requireSameSize(out, in, "in");
        int[] shape = Operands.ropeShape(in);
        int b = shape[0], t = shape[1], h = shape[2], d = shape[3];
        Operands.requireLength(positions, (long) b * t);
        var stream = device.compute().handle();
        device.launch(name, () -> (int) kernel.invokeExact(stream, dtype, out.memory(), in.memory(), positions.memory(),
                b, t, h, d, theta));
    }
}
