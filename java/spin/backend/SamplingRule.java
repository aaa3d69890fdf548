package spin.backend;

/**
 * How {@link Backend#sampleRows} turns a row of logits into a token, as HF's and vLLM's logits
 * processors and warpers do. Temperature 0 is greedy decoding (HF generate without sampling); a
 * positive temperature samples from {@code softmax(logits / temperature)} after the optional top-k
 * and top-p (nucleus) filters. The repetition penalty (HF's CTRL-style penalty, 1 = off) applies
 * in both modes.
 *
 * @param temperature 0 for greedy, else > 0 and finite
 * @param topP keep the most likely tokens whose cumulative probability first reaches this, in (0, 1]; 1 = off
 * @param topK keep the k most likely tokens (and those tied with the k-th); 0 = off
 * @param repetitionPenalty > 0 and finite; logits of tokens already in the sequence are divided by it
 *     (multiplied when negative)
 */
public record SamplingRule(double temperature, double topP, int topK, double repetitionPenalty) {
    public SamplingRule {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0 (0 = greedy), got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top_k must be >= 0 (0 = off), got " + topK);
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetition_penalty must be > 0 (1 = off), got " + repetitionPenalty);
        }
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public boolean penalizesRepetition() {
        return repetitionPenalty != 1;
    }
}
