package spin.generate;

import spin.backend.SamplingRule;

/**
 * How a run chooses its tokens: the rule applied to each step's logits, and the seed that with a
 * request's key starts the request's own random stream ({@link spin.backend.SplitMix64#stream}).
 */
public record SamplingParams(SamplingRule rule, long seed) {
    public SamplingParams {
        java.util.Objects.requireNonNull(rule, "rule");
    }

    /** The rule's components in {@link SamplingRule}'s order, then the seed. */
    public SamplingParams(double temperature, double topP, int topK, double repetitionPenalty, long seed) {
        this(new SamplingRule(temperature, topP, topK, repetitionPenalty), seed);
    }

    /** Greedy decoding without a repetition penalty: the reference's setting. */
    public static SamplingParams greedy() {
        return new SamplingParams(0, 1, 0, 1, 0);
    }
}
