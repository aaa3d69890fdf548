package spin.bench;

import spin.model.MistralConfig;

/**
 * Model FLOPs of one training step (forward + backward, no recompute counted), for MFU: the
 * convention of PaLM's appendix and tools/bench_torch_gpu.py — 6 FLOPs per weight and token for
 * every matrix the tokens pass through (the layers' projections and the LM head; the embedding is a
 * lookup and the norms' weights are negligible), plus attention's score and value products,
 * {@link KernelCases#attentionFlops} forward and 2.5x that backward.
 */
public final class TrainingFlops {
    private TrainingFlops() {}

    /** FLOPs of one forward + backward of {@code batch} sequences of {@code sequenceLength} tokens. */
    public static double perStep(MistralConfig c, int batch, int sequenceLength) {
        long c1 = c.hiddenSize();
        long q = (long) c.numAttentionHeads() * c.headDim();
        long kv = (long) c.numKeyValueHeads() * c.headDim();
        long perLayer = c1 * q + 2 * c1 * kv + q * c1 + 3 * c1 * c.intermediateSize();
        long matrices = c.numHiddenLayers() * perLayer + c1 * c.vocabSize();
        double tokens = (double) batch * sequenceLength;
        double attention = 3.5 * c.numHiddenLayers() * KernelCases.attentionFlops(batch, sequenceLength,
                c.numAttentionHeads(), c.headDim(), c.slidingWindow());
        return 6.0 * matrices * tokens + attention;
    }
}
