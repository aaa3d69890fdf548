package spin.data;

/**
 * One unpadded sequence, prompt then response: token ids, attention mask (0 for every EOS that
 * came from the text) and labels (the ids, with prompt positions set to -100).
 */
public record TokenRow(int[] ids, int[] attentionMask, int[] labels) {
    public TokenRow {
        if (attentionMask.length != ids.length || labels.length != ids.length) {
            throw new IllegalArgumentException("ids, attention mask and labels differ in length");
        }
    }

    public int length() {
        return ids.length;
    }
}
