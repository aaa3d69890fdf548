package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/**
 * The fused log-softmax gather over F32 logits and its backward into F32 or BF16 dLogits:
 * kernels/logprob.cu.
 */
final class LogProb {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle forward;
    private final MethodHandle backward;

    LogProb(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_logprob_forward", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT);
        backward = device.bind("spin_logprob_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                JAVA_INT, JAVA_INT);
    }

    void forward(Tensor logp, Tensor lse, Tensor logits, Tensor labels) {
        Operands.requireF32(backend, logp, lse, logits);
        Operands.requireDtype(backend, labels, DType.I32, "labels");
        int v = logits.dim(-1), n = Operands.rows(logits, v, "logits");
        Operands.requireLength(logp, n);
        Operands.requireLength(lse, n);
        Operands.requireLength(labels, n);
        var stream = device.compute().handle();
        device.launch("spin_logprob_forward", () -> (int) forward.invokeExact(stream, logp.memory(), lse.memory(),
                logits.memory(), labels.memory(), n, v));
    }

    void backward(Tensor dLogits, Tensor dLogp, Tensor logits, Tensor labels, Tensor lse) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, dLogits));
        Operands.requireF32(backend, dLogp, logits, lse);
        Operands.requireDtype(backend, labels, DType.I32, "labels");
        int v = logits.dim(-1), n = Operands.rows(logits, v, "logits");
        Operands.requireSameSize(dLogits, logits, "logits");
        Operands.requireLength(dLogp, n);
        Operands.requireLength(lse, n);
        Operands.requireLength(labels, n);
        var stream = device.compute().handle();
        device.launch("spin_logprob_backward", () -> (int) backward.invokeExact(stream, dtype, dLogits.memory(),
                dLogp.memory(), logits.memory(), labels.memory(), lse.memory(), n, v));
    }
}
