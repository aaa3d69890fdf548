package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.Tensor;

/**
 * Per-sequence log-prob sums and the SPIN loss with its metrics (left on the device, as
 * SPIN_LOSS_STATS = {@link SpinLossStats#COUNT} doubles): kernels/spin_loss.cu.
 */
final class SpinLoss {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle rowSumForward;
    private final MethodHandle rowSumBackward;
    private final MethodHandle lossForward;
    private final MethodHandle lossBackward;

    SpinLoss(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        rowSumForward = device.bind("spin_row_sum_forward", ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT);
        rowSumBackward = device.bind("spin_row_sum_backward", ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT);
        lossForward = device.bind("spin_spin_loss_forward", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                JAVA_INT, JAVA_FLOAT, JAVA_INT);
        lossBackward = device.bind("spin_spin_loss_backward", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT, JAVA_FLOAT, JAVA_INT, JAVA_FLOAT);
    }

    void rowSumForward(Tensor out, Tensor in) {
        Operands.requireF32(backend, out, in);
        int time = in.dim(-1), b = Operands.rows(in, time, "in");
        Operands.requireLength(out, b);
        var stream = device.compute().handle();
        device.launch("spin_row_sum_forward",
                () -> (int) rowSumForward.invokeExact(stream, out.memory(), in.memory(), b, time));
    }

    void rowSumBackward(Tensor dIn, Tensor dOut) {
        Operands.requireF32(backend, dIn, dOut);
        int time = dIn.dim(-1), b = Operands.rows(dIn, time, "dIn");
        Operands.requireLength(dOut, b);
        var stream = device.compute().handle();
        device.launch("spin_row_sum_backward",
                () -> (int) rowSumBackward.invokeExact(stream, dIn.memory(), dOut.memory(), b, time));
    }

    void forward(Tensor stats, Tensor policyReal, Tensor policyGenerated, Tensor opponentReal, Tensor opponentGenerated,
            float beta, SpinLossType type) {
        int b = requirePairs(policyReal, policyGenerated, opponentReal, opponentGenerated);
        Operands.requireDtype(backend, stats, DType.F64, "stats");
        Operands.requireLength(stats, SpinLossStats.COUNT);
        var stream = device.compute().handle();
        device.launch("spin_spin_loss_forward", () -> (int) lossForward.invokeExact(stream, stats.memory(),
                policyReal.memory(), policyGenerated.memory(), opponentReal.memory(), opponentGenerated.memory(), b, beta,
                code(type)));
    }

    void backward(Tensor dPolicyReal, Tensor dPolicyGenerated, Tensor policyReal, Tensor policyGenerated,
            Tensor opponentReal, Tensor opponentGenerated, float beta, SpinLossType type, float lossScale) {
        int b = requirePairs(policyReal, policyGenerated, opponentReal, opponentGenerated);
        Operands.requireF32(backend, dPolicyReal, dPolicyGenerated);
        Operands.requireLength(dPolicyReal, b);
        Operands.requireLength(dPolicyGenerated, b);
        var stream = device.compute().handle();
        device.launch("spin_spin_loss_backward", () -> (int) lossBackward.invokeExact(stream, dPolicyReal.memory(),
                dPolicyGenerated.memory(), policyReal.memory(), policyGenerated.memory(), opponentReal.memory(),
                opponentGenerated.memory(), b, beta, code(type), lossScale));
    }

    private int requirePairs(Tensor... logps) {
        Operands.requireF32(backend, logps);
        int b = Math.toIntExact(logps[0].size());
        if (b == 0) {
            throw new IllegalArgumentException("SPIN loss needs at least one pair");
        }
        for (Tensor t : logps) {
            Operands.requireLength(t, b);
        }
        return b;
    }

    /** SPIN_LOSS_SIGMOID / SPIN_LOSS_HINGE of spin_native.h. */
    private static int code(SpinLossType type) {
        return switch (type) {
            case SIGMOID -> 0;
            case HINGE -> 1;
        };
    }
}
