package spin.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import spin.data.SpinTextFormat.SpinText;

/**
 * Every tokenization rule of the reference's tokenize_row, computed by hand with a tokenizer where
 * each character is its code point ('a' = 97 ... 'z' = 122) and "</s>" is EOS = 2.
 */
class SpinRowEncoderTest {
    private static final int X = -100; // label of prompt positions
    private static final SpinRowEncoder ROOMY = encoder(100, 50, TruncationMode.KEEP_END);

    private static SpinRowEncoder encoder(int maxLength, int maxPromptLength, TruncationMode mode) {
        return new SpinRowEncoder(new CharTokenizer(), new SequenceLimits(maxLength, maxPromptLength, mode));
    }

    @Test
    void eosFromTheTextIsMaskedTheAppendedEosIsNotAndPromptLabelsAreIgnored() {
        SpinFeatures f = ROOMY.encode(7, new SpinText("ab</s>c", "xy</s>", "z"));
        assertEquals(7, f.index());
        assertEquals(4, f.promptLength());
        assertArrayEquals(new int[] {97, 98, 2, 99, 120, 121, 2, 2}, f.real().ids());
        assertArrayEquals(new int[] {1, 1, 0, 1, 1, 1, 0, 1}, f.real().attentionMask());
        assertArrayEquals(new int[] {X, X, X, X, 120, 121, 2, 2}, f.real().labels());
        assertArrayEquals(new int[] {97, 98, 2, 99, 122, 2}, f.generated().ids());
        assertArrayEquals(new int[] {1, 1, 0, 1, 1, 1}, f.generated().attentionMask());
        assertArrayEquals(new int[] {X, X, X, X, 122, 2}, f.generated().labels());
    }

    @Test
    void anEmptyGeneratedAnswerIsJustTheAppendedEos() {
        SpinFeatures f = ROOMY.encode(0, new SpinText("q", "a", ""));
        assertArrayEquals(new int[] {113, 2}, f.generated().ids());
        assertArrayEquals(new int[] {1, 1}, f.generated().attentionMask());
        assertArrayEquals(new int[] {X, 2}, f.generated().labels());
    }

    @Test
    void anOverLongPromptKeepsItsLastTokensUnderKeepEnd() {
        // 7 prompt + 2 (real "x" + EOS) = 9 > 8: the prompt keeps its last 4 tokens; 4 + 2 fits.
        SpinFeatures f = encoder(8, 4, TruncationMode.KEEP_END).encode(0, new SpinText("abcdefg", "x", ""));
        assertEquals(4, f.promptLength());
        assertArrayEquals(new int[] {100, 101, 102, 103, 120, 2}, f.real().ids());
        assertArrayEquals(new int[] {X, X, X, X, 120, 2}, f.real().labels());
        assertArrayEquals(new int[] {100, 101, 102, 103, 2}, f.generated().ids());
    }

    @Test
    void anOverLongPromptKeepsItsFirstTokensUnderKeepStart() {
        SpinFeatures f = encoder(8, 4, TruncationMode.KEEP_START).encode(0, new SpinText("ab</s>defg", "x", ""));
        assertArrayEquals(new int[] {97, 98, 2, 100, 120, 2}, f.real().ids());
        assertArrayEquals(new int[] {1, 1, 0, 1, 1, 1}, f.real().attentionMask(), "masks are cut with the ids");
    }

    @Test
    void aPromptThatFitsTogetherWithTheResponsesIsNotCutEvenIfLongerThanMaxPromptLength() {
        SpinFeatures f = encoder(8, 4, TruncationMode.KEEP_END).encode(0, new SpinText("abcdef", "x", ""));
        assertEquals(6, f.promptLength());
        assertArrayEquals(new int[] {97, 98, 99, 100, 101, 102, 120, 2}, f.real().ids());
    }

    @Test
    void anOverLongResponseKeepsItsFirstMaxLengthMinusMaxPromptLengthTokens() {
        // 2 prompt + 7 (real "uvwxyz" + EOS) = 9 > 8. The prompt is already short; the responses
        // keep their first 8 - 4 = 4 tokens, so the real one loses its EOS and the row is 6 long.
        SpinFeatures f = encoder(8, 4, TruncationMode.KEEP_END).encode(0, new SpinText("ab", "uvwxyz", "q"));
        assertEquals(2, f.promptLength());
        assertArrayEquals(new int[] {97, 98, 117, 118, 119, 120}, f.real().ids());
        assertArrayEquals(new int[] {X, X, 117, 118, 119, 120}, f.real().labels());
        assertArrayEquals(new int[] {97, 98, 113, 2}, f.generated().ids(), "the short response is untouched");
    }

    @Test
    void whenBothAreTooLongThePromptAndThenTheResponsesAreCut() {
        SpinFeatures f = encoder(8, 4, TruncationMode.KEEP_END).encode(0, new SpinText("abcdefghij", "klmnopq</s>", "rs"));
        assertArrayEquals(new int[] {103, 104, 105, 106, 107, 108, 109, 110}, f.real().ids());
        assertArrayEquals(new int[] {103, 104, 105, 106, 114, 115, 2}, f.generated().ids());
        assertArrayEquals(new int[] {X, X, X, X, 114, 115, 2}, f.generated().labels());
    }

    @Test
    void responsesAreCutToMaxLengthMinusMaxPromptLengthEvenWhenThePromptIsShorter() {
        // real is 6 + EOS = 7, generated 1 + EOS = 2; 3 + 7 = 10 > 9: the prompt (3) is within its
        // limit of 4 and stays; 3 + 7 > 9 still, so the responses keep 9 - 4 = 5 tokens, not 9 - 3.
        SpinFeatures f = encoder(9, 4, TruncationMode.KEEP_END).encode(0, new SpinText("abc", "uvwxyz", "q"));
        assertArrayEquals(new int[] {97, 98, 99, 117, 118, 119, 120, 121}, f.real().ids());
        assertArrayEquals(new int[] {97, 98, 99, 113, 2}, f.generated().ids());
    }

    @Test
    void limitsMustLeaveRoomForAResponse() {
        assertThrows(IllegalArgumentException.class, () -> new SequenceLimits(512, 512, TruncationMode.KEEP_END));
        assertThrows(IllegalArgumentException.class, () -> new SequenceLimits(512, 0, TruncationMode.KEEP_END));
        assertThrows(IllegalArgumentException.class, () -> TruncationMode.parse("keep_middle"));
        assertEquals(TruncationMode.KEEP_START, TruncationMode.parse("keep_start"));
    }
}
