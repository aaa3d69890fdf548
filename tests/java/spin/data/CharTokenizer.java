package spin.data;

import spin.text.TokenEncoder;

/** A tokenizer for hand-computed expectations: every character is its own code point, and "</s>" is EOS = 2. */
final class CharTokenizer implements TokenEncoder {
    static final int EOS = 2;

    @Override
    public int[] encode(String text) {
        return text.replace("</s>", "\u0002").codePoints().toArray();
    }

    @Override
    public int eosId() {
        return EOS;
    }
}
