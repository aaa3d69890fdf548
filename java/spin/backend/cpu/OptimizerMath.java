package spin.backend.cpu;

import static spin.backend.cpu.Mem.f;

import java.lang.foreign.MemorySegment;

/**
 * Element ranges of the optimizer updates, written operation by operation as torch's single-tensor
 * (non-foreach) float32 implementations order them, so that a step rounds like torch's does.
 */
final class OptimizerMath {
    private OptimizerMath() {}

    /**
     * A step's gradient as {@link spin.backend.StepGradient} says to take it: element i times
     * {@code scale} when {@code scaled} (one float multiply; none otherwise), and zeroed once read
     * when {@code zero}.
     */
    record Gradient(MemorySegment grad, boolean scaled, float scale, boolean zero) {
        float take(long i) {
            float g = f(grad, i);
            if (zero) {
                f(grad, i, 0f);
            }
            return scaled ? g * scale : g;
        }
    }

    static void rmsprop(MemorySegment param, Gradient grad, MemorySegment squareAvg, long start, long end,
            float lr, float alpha, float eps, float weightDecay) {
        float keep = 1f - alpha;
        for (long i = start; i < end; i++) {
            float p = f(param, i);
            float g = weightDecay == 0f ? grad.take(i) : grad.take(i) + weightDecay * p;
            float s = f(squareAvg, i) * alpha + keep * g * g;
            f(squareAvg, i, s);
            f(param, i, p + -lr * (g / ((float) Math.sqrt(s) + eps)));
        }
    }

    static void adamw(MemorySegment param, Gradient grad, MemorySegment expAvg, MemorySegment expAvgSq,
            long start, long end, float lr, float beta1, float beta2, float eps, float weightDecay, long step) {
        // torch keeps the bias corrections in double and rounds them once, when they meet a float tensor
        float decay = (float) (1.0 - (double) lr * weightDecay);
        float stepSize = (float) (lr / (1.0 - Math.pow(beta1, step)));
        float correction2Sqrt = (float) Math.sqrt(1.0 - Math.pow(beta2, step));
        float mixIn = 1f - beta1, mixInSq = 1f - beta2;
        for (long i = start; i < end; i++) {
            float p = weightDecay == 0f ? f(param, i) : f(param, i) * decay;
            float g = grad.take(i);
            float m = f(expAvg, i);
            m = m + mixIn * (g - m);
            float v = f(expAvgSq, i) * beta2 + mixInSq * g * g;
            f(expAvg, i, m);
            f(expAvgSq, i, v);
            float denominator = (float) Math.sqrt(v) / correction2Sqrt + eps;
            f(param, i, p + -stepSize * (m / denominator));
        }
    }
}
