package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/** Greedy token choice on the device: kernels/sampling.cu. */
final class Sampling {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle argmax;

    Sampling(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        argmax = device.bind("spin_argmax_rows", ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT);
    }

    void argmax(Tensor out, Tensor logits) {
        Operands.requireF32(backend, logits);
        Operands.requireDtype(backend, out, DType.I32, "out");
        int v = logits.dim(-1), s = Operands.rows(logits, v, "logits");
        Operands.requireLength(out, s);
        var stream = device.compute().handle();
        device.launch("spin_argmax_rows", () -> (int) argmax.invokeExact(stream, out.memory(), logits.memory(), s, v));
    }
}
