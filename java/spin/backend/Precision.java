package spin.backend;

import java.util.Locale;

/**
 * The compute dtype a device is opened for ({@code --precision}): the dtype of activations and of
 * the weights products use. Master weights, gradients and optimizer state are fp32 in every case.
 */
public enum Precision {
    /** The device's own: fp32 on the CPU (the reference), bf16 on a GPU (as HF/DeepSpeed bf16 runs). */
    AUTO,
    FP32,
    BF16;

    /** Parses {@code auto}, {@code fp32} or {@code bf16}; anything else is an error listing them. */
    public static Precision parse(String text) {
        return switch (text.trim().toLowerCase(Locale.ROOT)) {
            case "auto" -> AUTO;
            case "fp32", "f32", "float32" -> FP32;
            case "bf16", "bfloat16" -> BF16;
            default -> throw new IllegalArgumentException("unknown precision \"" + text + "\"; use auto, fp32 or bf16");
        };
    }

    /** The dtype on a device whose own is {@code deviceDefault}. */
    public DType computeType(DType deviceDefault) {
        return switch (this) {
            case AUTO -> deviceDefault;
            case FP32 -> DType.F32;
            case BF16 -> DType.BF16;
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
