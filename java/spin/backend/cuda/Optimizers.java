package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import spin.backend.Operands;
import spin.backend.StepGradient;
import spin.backend.Tensor;

/**
 * Fused RMSprop and AdamW steps on flat fp32 buffers, with the bf16 compute copy, the gradient's
 * clipping scale and its zeroing in the same pass: kernels/optimizer.cu.
 */
final class Optimizers {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle rmsprop;
    private final MethodHandle adamw;

    Optimizers(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        rmsprop = device.bind("spin_rmsprop_step", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS,
                JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT);
        adamw = device.bind("spin_adamw_step", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT);
    }

    void rmsprop(Tensor param, Tensor grad, Tensor squareAvg, Tensor computeCopy, StepGradient gradient, float lr,
            float alpha, float eps, float weightDecay) {
        Operands.requireF32(backend, param, grad, squareAvg);
        MemorySegment copy = copy(computeCopy, param), scale = scale(gradient);
        int zero = gradient.zero() ? 1 : 0;
        Operands.requireSameSize(grad, param, "param");
        Operands.requireSameSize(squareAvg, param, "param");
        var stream = device.compute().handle();
        long n = param.size();
        device.launch("spin_rmsprop_step", () -> (int) rmsprop.invokeExact(stream, param.memory(), grad.memory(), scale,
                zero, squareAvg.memory(), copy, n, lr, alpha, eps, weightDecay));
    }

    void adamw(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, Tensor computeCopy, StepGradient gradient,
            float lr, float beta1, float beta2, float eps, float weightDecay, long step) {
        Operands.requireF32(backend, param, grad, expAvg, expAvgSq);
        MemorySegment copy = copy(computeCopy, param), scale = scale(gradient);
        int zero = gradient.zero() ? 1 : 0;
        Operands.requireSameSize(grad, param, "param");
        Operands.requireSameSize(expAvg, param, "param");
        Operands.requireSameSize(expAvgSq, param, "param");
        if (step < 1) {
            throw new IllegalArgumentException("AdamW step count starts at 1, got " + step);
        }
        // As torch: the bias corrections in double, rounded once where they meet the float tensors.
        float stepSize = (float) (lr / (1.0 - Math.pow(beta1, step)));
        float correction2Sqrt = (float) Math.sqrt(1.0 - Math.pow(beta2, step));
        var stream = device.compute().handle();
        long n = param.size();
        device.launch("spin_adamw_step", () -> (int) adamw.invokeExact(stream, param.memory(), grad.memory(), scale, zero,
                expAvg.memory(), expAvgSq.memory(), copy, n, lr, beta1, beta2, eps, weightDecay, stepSize,
                correction2Sqrt));
    }

    /** The kernels' optional gradient scale, read on the device: NULL for none. */
    private MemorySegment scale(StepGradient gradient) {
        gradient.check(backend);
        return gradient.scale() == null ? MemorySegment.NULL : gradient.scale().memory();
    }

    /** The kernels' optional bf16 copy: NULL for none. */
    private MemorySegment copy(Tensor computeCopy, Tensor param) {
        if (computeCopy == null) {
            return MemorySegment.NULL;
        }
        Operands.requireComputeCopy(backend, computeCopy, param);
        return computeCopy.memory();
    }
}
