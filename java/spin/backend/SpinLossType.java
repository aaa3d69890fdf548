package spin.backend;

/** The two SPIN losses of the reference trainer, on {@code z = beta * logits}. */
public enum SpinLossType {
    /** {@code -log(sigmoid(z))}. */
    SIGMOID,
    /** {@code max(0, 1 - z)}. */
    HINGE
}
