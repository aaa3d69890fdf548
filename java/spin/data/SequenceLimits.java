package spin.data;

/**
 * Length limits of a training or scoring sequence (prompt + response), the reference's max_length,
 * max_prompt_length and truncation_mode. Defaults: 1024, 512, keep_end.
 */
public record SequenceLimits(int maxLength, int maxPromptLength, TruncationMode truncationMode) {
    public static final SequenceLimits REFERENCE = new SequenceLimits(1024, 512, TruncationMode.KEEP_END);

    public SequenceLimits {
        if (maxPromptLength <= 0 || maxLength <= maxPromptLength) {
            throw new IllegalArgumentException("need 0 < max_prompt_length < max_length, got max_prompt_length "
                    + maxPromptLength + " and max_length " + maxLength);
        }
    }

    /** What is left of max_length for a response once the prompt has been cut to max_prompt_length. */
    public int maxResponseLength() {
        return maxLength - maxPromptLength;
    }
}
