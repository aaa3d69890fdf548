package spin.generate;

import java.util.Arrays;
import java.util.BitSet;
import java.util.Collection;
import java.util.List;

/**
 * When a request stops: at a stop token (EOS; the token is kept as the last of the output, as HF
 * generate keeps it), when its text contains a stop string (the output text is cut before the
 * string, as vLLM does), or after {@code maxNewTokens} tokens.
 */
public final class StopCriteria {
    private final int maxNewTokens;
    private final BitSet tokenIds = new BitSet();
    private final List<String> strings;
    private final TokenDecoder decoder;

    /**
     * @param decoder turns tokens into the text stop strings are looked for in; may be null when
     *     {@code strings} is empty
     */
    public StopCriteria(int maxNewTokens, Collection<Integer> tokenIds, List<String> strings, TokenDecoder decoder) {
        if (maxNewTokens < 1) {
            throw new IllegalArgumentException("max_new_tokens must be >= 1, got " + maxNewTokens);
        }
        for (int id : tokenIds) {
            if (id < 0) {
                throw new IllegalArgumentException("stop token ids must be >= 0, got " + id);
            }
            this.tokenIds.set(id);
        }
        for (String s : strings) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("a stop string must not be empty");
            }
        }
        if (!strings.isEmpty() && decoder == null) {
            throw new IllegalArgumentException("stop strings need a tokenizer to decode with");
        }
        this.maxNewTokens = maxNewTokens;
        this.strings = List.copyOf(strings);
        this.decoder = decoder;
    }

    /** Stops after {@code maxNewTokens} tokens only: what a benchmark wants. */
    public static StopCriteria length(int maxNewTokens) {
        return new StopCriteria(maxNewTokens, List.of(), List.of(), null);
    }

    public int maxNewTokens() {
        return maxNewTokens;
    }

    /**
     * Whether the output so far, {@code tokens[start, end)} (at least one token), ends the request,
     * and why; null to go on.
     */
    FinishReason check(int[] tokens, int start, int end) {
        if (tokenIds.get(tokens[end - 1])) {
            return FinishReason.STOP_TOKEN;
        }
        if (!strings.isEmpty() && firstStop(decoder.decode(Arrays.copyOfRange(tokens, start, end))) >= 0) {
            return FinishReason.STOP_STRING;
        }
        return end - start >= maxNewTokens ? FinishReason.LENGTH : null;
    }

    /** The text before the earliest stop string in it; the whole text when it holds none. */
    public String cut(String text) {
        int at = firstStop(text);
        return at < 0 ? text : text.substring(0, at);
    }

    private int firstStop(String text) {
        int first = -1;
        for (String s : strings) {
            int at = text.indexOf(s);
            if (at >= 0 && (first < 0 || at < first)) {
                first = at;
            }
        }
        return first;
    }
}
