package spin.generate;

/** Why a request stopped generating. */
public enum FinishReason {
    /** It sampled a stop token (EOS); the token is the last one of its output. */
    STOP_TOKEN,
    /** Its text came to contain a stop string. */
    STOP_STRING,
    /** It reached max_new_tokens. */
    LENGTH
}
