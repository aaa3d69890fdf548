package spin.bench;

import java.util.List;
import spin.backend.DeviceSpec;

/**
 * Sizes of the kernel benchmarks ({@link KernelCases}): Mistral-7B's at scale 1 (C 4096, F 14336,
 * V 32000, 32 query and 8 kv heads of 128; 4096 rows through the GEMMs and the per-token ops; 16384
 * tokens through attention, as 16384 / T sequences of T = 512 .. 4096; a 4096 window; a
 * 2^27-parameter shard for AdamW and the casts). At scale s every size and token count is divided
 * by s, and the head counts by min(s, 8) (keeping the 4:1 grouping and head_dim 128, the kernels'
 * Mistral instantiation), so the emulator runs the same cases in seconds.
 *
 * @param sequenceLengths attention's T values; {@link #attentionTokens} / T sequences each
 */
public record KernelShapes(int scale, int rows, int hidden, int ffn, int vocab, int heads, int kvHeads, int headDim,
        int attentionTokens, List<Integer> sequenceLengths, int window, int parameters) {

    /** The attention sequence lengths at scale 1; the case names carry these (see {@link KernelCases}). */
    public static final List<Integer> FULL_SEQUENCE_LENGTHS = List.of(512, 1024, 2048, 4096);

    /** The scale used where timing means nothing (the emulator, the CPU): shapes that run in seconds there. */
    public static final int TINY_SCALE = 64;

    public KernelShapes {
        sequenceLengths = List.copyOf(sequenceLengths);
    }

    /** Mistral-7B's shapes divided by {@code scale} (a power of two, 1 to 256). */
    public static KernelShapes mistral7b(int scale) {
        if (scale < 1 || scale > 256 || Integer.bitCount(scale) != 1) {
            throw new IllegalArgumentException("scale must be a power of two from 1 to 256, got " + scale);
        }
        int headScale = Math.min(scale, 8);
        return new KernelShapes(scale, 4096 / scale, 4096 / scale, 14336 / scale, 32000 / scale, 32 / headScale,
                8 / headScale, 128, 16384 / scale, FULL_SEQUENCE_LENGTHS.stream().map(t -> t / scale).toList(), 4096 / scale,
                (1 << 27) / scale);
    }

    /** Full shapes on a GPU; {@link #TINY_SCALE} on the emulator and the CPU, where the figures are not speed. */
    public static int defaultScale(DeviceSpec device) {
        return device.kind() == DeviceSpec.Kind.CUDA ? 1 : TINY_SCALE;
    }
}
