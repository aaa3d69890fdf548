package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.invoke.MethodHandle;
import spin.backend.Operands;
import spin.backend.Tensor;

/** The SwiGLU gate silu(gate) * up and its backward, on F32 or BF16 activations: kernels/swiglu.cu. */
final class Swiglu {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle forward;
    private final MethodHandle backward;

    Swiglu(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_swiglu_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
        backward = device.bind("spin_swiglu_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                JAVA_LONG);
    }

    void forward(Tensor out, Tensor gate, Tensor up) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, gate, up));
        Operands.requireSameSize(out, gate, "gate");
        Operands.requireSameSize(out, up, "up");
        var stream = device.compute().handle();
        long n = out.size();
        device.launch("spin_swiglu_forward",
                () -> (int) forward.invokeExact(stream, dtype, out.memory(), gate.memory(), up.memory(), n));
    }

    void backward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, dGate, dUp, dOut, gate, up));
        Operands.requireSameSize(dOut, gate, "gate");
        Operands.requireSameSize(dOut, up, "up");
        Operands.requireSameSize(dGate, gate, "gate");
        Operands.requireSameSize(dUp, up, "up");
        var stream = device.compute().handle();
        long n = dOut.size();
        device.launch("spin_swiglu_backward", () -> (int) backward.invokeExact(stream, dtype, dGate.memory(),
                dUp.memory(), dOut.memory(), gate.memory(), up.memory(), n));
    }
}
