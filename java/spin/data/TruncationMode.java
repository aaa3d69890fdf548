package spin.data;

/** Which end of an over-long prompt survives (the reference's truncation_mode; keep_end is its default). */
public enum TruncationMode {
    /** Keep the last max_prompt_length tokens: the question's end and the assistant cue stay. */
    KEEP_END,
    /** Keep the first max_prompt_length tokens. */
    KEEP_START;

    public static TruncationMode parse(String name) {
        return switch (name) {
            case "keep_end" -> KEEP_END;
            case "keep_start" -> KEEP_START;
            default -> throw new IllegalArgumentException("truncation mode must be keep_end or keep_start, got \"" + name + "\"");
        };
    }
}
