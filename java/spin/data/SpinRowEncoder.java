package spin.data;

import java.util.Arrays;
import spin.backend.Backend;
import spin.text.TokenEncoder;

/**
 * Tokenizes a record's three texts by the reference's rules (SPINTrainer.tokenize_row):
 * <ol>
 *   <li>prompt, real and generated are tokenized separately, no special tokens added;
 *   <li>every EOS id already in them gets attention mask 0 (the template's {@code </s>}s);
 *   <li>EOS is appended to each response with mask 1;
 *   <li>if prompt + the longer response exceed max_length, the prompt keeps its last (keep_end)
 *       or first (keep_start) max_prompt_length tokens;
 *   <li>if still too long, each response keeps its first max_length - max_prompt_length tokens;
 *   <li>labels are the ids with the prompt positions set to -100.
 * </ol>
 * Note that rule 4 and 5 compare against the longer response measured before any cut.
 */
public final class SpinRowEncoder {
    private final TokenEncoder tokenizer;
    private final SequenceLimits limits;

    public SpinRowEncoder(TokenEncoder tokenizer, SequenceLimits limits) {
        this.tokenizer = tokenizer;
        this.limits = limits;
    }

    public SpinFeatures encode(long index, SpinTextFormat.SpinText text) {
        int eos = tokenizer.eosId();
        int[] prompt = tokenizer.encode(text.prompt());
        int[] real = append(tokenizer.encode(text.real()), eos);
        int[] generated = append(tokenizer.encode(text.generated()), eos);
        int[] promptMask = eosMasked(prompt, prompt.length, eos);
        int[] realMask = eosMasked(real, real.length - 1, eos);
        int[] generatedMask = eosMasked(generated, generated.length - 1, eos);

        int longer = Math.max(real.length, generated.length);
        if (prompt.length + longer > limits.maxLength()) {
            int keep = Math.min(prompt.length, limits.maxPromptLength());
            int from = limits.truncationMode() == TruncationMode.KEEP_END ? prompt.length - keep : 0;
            prompt = Arrays.copyOfRange(prompt, from, from + keep);
            promptMask = Arrays.copyOfRange(promptMask, from, from + keep);
        }
        if (prompt.length + longer > limits.maxLength()) {
            int keep = limits.maxResponseLength();
            real = head(real, keep);
            realMask = head(realMask, keep);
            generated = head(generated, keep);
            generatedMask = head(generatedMask, keep);
        }
        return new SpinFeatures(index, prompt.length, row(prompt, promptMask, real, realMask),
                row(prompt, promptMask, generated, generatedMask));
    }

    private static int[] append(int[] ids, int id) {
        int[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = id;
        return out;
    }

    /** Mask 1 everywhere except 0 on EOS ids among the first {@code textLength} (the appended EOS stays visible). */
    private static int[] eosMasked(int[] ids, int textLength, int eos) {
        int[] mask = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            mask[i] = i < textLength && ids[i] == eos ? 0 : 1;
        }
        return mask;
    }

    private static int[] head(int[] a, int n) {
        return a.length <= n ? a : Arrays.copyOf(a, n);
    }

    private static TokenRow row(int[] prompt, int[] promptMask, int[] response, int[] responseMask) {
        int n = prompt.length + response.length;
        int[] ids = Arrays.copyOf(prompt, n);
        System.arraycopy(response, 0, ids, prompt.length, response.length);
        int[] mask = Arrays.copyOf(promptMask, n);
        System.arraycopy(responseMask, 0, mask, prompt.length, response.length);
        int[] labels = ids.clone();
        Arrays.fill(labels, 0, prompt.length, Backend.IGNORE_INDEX);
        return new TokenRow(ids, mask, labels);
    }
}
