package spin.backend;

/**
 * How an optimizer step ({@link Backend#rmspropStep}, {@link Backend#adamwStep}) takes its gradient,
 * so that clipping's scale and the gradient's zeroing run in the step's own pass instead of a pass
 * each: the step uses {@code grad[i] * scale} (one fp32 multiply, rounded once: exactly what
 * {@code scale(grad, factor)} before the step leaves; with {@code scale} null the gradient is used
 * as it is, no multiply), and with {@code zero} it writes {@code grad[i] = +0} once it has read it:
 * bit for bit the step followed by {@code fill(grad, 0f)}.
 *
 * @param scale F32 [1] on the step's backend, such as {@link Backend#clipFactor}'s factor (read
 *     there, never by the host); null for none
 * @param zero whether the step leaves the gradient zero (its last use)
 */
public record StepGradient(Tensor scale, boolean zero) {
    /** The gradient used as it is and left as it is. */
    public static final StepGradient AS_IS = new StepGradient(null, false);

    /** Checks the scale, if any: F32 [1] on {@code backend}. */
    public void check(Backend backend) {
        if (scale != null) {
            Operands.requireDtype(backend, scale, DType.F32, "gradient scale");
            Operands.requireLength(scale, 1);
        }
    }
}
