package spin.text;

/** Text to token ids, and the end-of-sequence id: all the SPIN collator needs from a tokenizer. */
public interface TokenEncoder {
    /** Ids of {@code text} with no special tokens added and no truncation. */
    int[] encode(String text);

    int eosId();
}
