package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

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
    private final MethodHandle qkForward;
    private final MethodHandle qkBackward;

    Rope(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_rope_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT);
        backward = device.bind("spin_rope_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT);
        qkForward = device.bind("spin_rope_qk_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT);
        qkBackward = device.bind("spin_rope_qk_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT);
    }

    void forward(Tensor out, Tensor in, Tensor positions, float theta) {
        rotate("spin_rope_forward", forward, out, in, positions, theta);
    }

    void backward(Tensor dIn, Tensor dOut, Tensor positions, float theta) {
        rotate("spin_rope_backward", backward, dIn, dOut, positions, theta);
    }

    void qkForward(Tensor q, Tensor k, Tensor positions, float theta) {
        rotateQk("spin_rope_qk_forward", qkForward, q, k, positions, theta);
    }

    void qkBackward(Tensor dq, Tensor dk, Tensor positions, float theta) {
        rotateQk("spin_rope_qk_backward", qkBackward, dq, dk, positions, theta);
    }

    private void rotateQk(String name, MethodHandle kernel, Tensor q, Tensor k, Tensor positions, float theta) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, q, k));
        Operands.requireDtype(backend, positions, DType.I32, "positions");
        int[] qShape = Operands.ropeShape(q), kShape = Operands.ropeShape(k);
        int b = qShape[0], t = qShape[1], h = qShape[2], d = qShape[3], kvh = kShape[2];
        if (kShape[0] != b || kShape[1] != t || kShape[3] != d) {
            throw new IllegalArgumentException("q " + q + " and k " + k + " need the same B, T and D");
        }
        Operands.requireLength(positions, (long) b * t);
        var stream = device.compute().handle();
        device.launch(name, () -> (int) kernel.invokeExact(stream, dtype, q.memory(), k.memory(), positions.memory(),
                b, t, h, kvh, d, theta));
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
