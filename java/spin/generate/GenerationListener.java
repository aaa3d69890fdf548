package spin.generate;

/** Hears about a generation run as it goes: progress bars, benchmarks, streaming output. */
public interface GenerationListener {
    GenerationListener NONE = new GenerationListener() {};

    /** After every model step. */
    default void stepDone(StepReport step) {}

    /** When a request has finished, before the run returns. */
    default void finished(Generation generation) {}

    /**
     * One model step: a single {@code extend} over every sequence that had tokens to feed.
     *
     * @param promptTokens prompt tokens fed (prefill, possibly a chunk of a long prompt)
     * @param decodeTokens sampled tokens fed back, one per decoding sequence
     * @param sampled tokens sampled after the step
     * @param running sequences holding KV-cache blocks during the step
     * @param waiting requests not yet admitted
     * @param nanos wall time of the step, sampling included
     */
    record StepReport(int promptTokens, int decodeTokens, int sampled, int running, int waiting, long nanos) {}
}
