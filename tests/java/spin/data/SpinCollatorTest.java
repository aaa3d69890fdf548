package spin.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import spin.text.ChatMessage;
import spin.text.ChatTemplate;
import spin.text.TestTokenizer;
import spin.text.Tokenizer;

class SpinCollatorTest {
    private static final int X = -100;
    private static final int PAD = 7;

    /** Template "{content}</s>" per turn and ">" as generation prompt, so the rendered texts are short enough to check by hand. */
    private static final ChatTemplate SHORT = new ChatTemplate(
            "{% for m in messages %}{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}>{% endif %}", Map.of());

    private static SpinRecord record(String question, String real, String generated) {
        return new SpinRecord(List.of(ChatMessage.user(question), ChatMessage.assistant(real)),
                List.of(ChatMessage.user(question), ChatMessage.assistant(generated)));
    }

    @Test
    void batchesArePaddedToTheirLongestRowWithRealRowsFirst() {
        SpinCollator collator = new SpinCollator(new CharTokenizer(), SHORT, PAD, SequenceLimits.REFERENCE);
        // Prompt "</s>q</s>>" (empty system, question q): [2, 113, 2, 62], mask [0, 1, 0, 1].
        SpinFeatures first = collator.features(10, record("q", "ab", ""));
        SpinFeatures second = collator.features(11, record("q", "", "xyz"));
        assertArrayEquals(new int[] {2, 113, 2, 62, 97, 98, 2, 2}, first.real().ids());
        SpinBatch batch = collator.collate(List.of(first, second));
        assertEquals(2, batch.records());
        assertEquals(4, batch.rows());
        assertEquals(9, batch.length(), "longest row: prompt 4 + xyz + </s> + EOS");
        assertEquals(10, batch.recordIndex(0));
        assertEquals(11, batch.recordIndex(1));
        // The reference's collator pads real rows to the longest real row (8) and generated rows to the
        // longest generated row (9) with the pad id; concatenated_inputs then pads both to 9 with 0.
        assertArrayEquals(new int[] {
                2, 113, 2, 62, 97, 98, 2, 2, 0, // record 10, real "ab"
                2, 113, 2, 62, 2, 2, PAD, PAD, 0, // record 11, real ""
                2, 113, 2, 62, 2, 2, PAD, PAD, PAD, // record 10, generated ""
                2, 113, 2, 62, 120, 121, 122, 2, 2}, batch.ids());
        assertArrayEquals(new int[] {
                0, 1, 0, 1, 1, 1, 0, 1, 0,
                0, 1, 0, 1, 0, 1, 0, 0, 0,
                0, 1, 0, 1, 0, 1, 0, 0, 0,
                0, 1, 0, 1, 1, 1, 1, 0, 1}, batch.attentionMask());
        assertArrayEquals(new int[] {
                X, X, X, X, 97, 98, 2, 2, X,
                X, X, X, X, 2, 2, X, X, X,
                X, X, X, X, 2, 2, X, X, X,
                X, X, X, X, 120, 121, 122, 2, 2}, batch.labels());
    }

    @Test
    void targetsAreLabelsShiftedLeftWithTheLastPositionIgnored() {
        SpinCollator collator = new SpinCollator(new CharTokenizer(), SHORT, 7, SequenceLimits.REFERENCE);
        SpinBatch batch = collator.collate(List.of(collator.features(0, record("q", "a", ""))));
        assertArrayEquals(new int[] {2, 113, 2, 62, 97, 2, 2, 2, 113, 2, 62, 2, 2, 0}, batch.ids(),
                "the generated half is as long as its longest row, then padded with concatenated_inputs' 0");
        assertArrayEquals(new int[] {
                X, X, X, 97, 2, 2, X,
                X, X, X, 2, 2, X, X}, batch.targets());
    }

    @Test
    void aSystemTurnOpensThePromptAndTheRealResponseRepeatsTheUserTurnAsInTheReference() {
        SpinCollator collator = new SpinCollator(new CharTokenizer(), SHORT, PAD, SequenceLimits.REFERENCE);
        SpinFeatures f = collator.features(0, new SpinRecord(
                List.of(ChatMessage.system("S"), ChatMessage.user("q"), ChatMessage.assistant("a")),
                List.of(ChatMessage.user("q"), ChatMessage.assistant("g"))));
        // prompt "S</s>q</s>>", real response real[1:] = "q</s>a</s>" + EOS, generated "g</s>" + EOS
        assertEquals(5, f.promptLength());
        assertArrayEquals(new int[] {83, 2, 113, 2, 62, 113, 2, 97, 2, 2}, f.real().ids());
        assertArrayEquals(new int[] {1, 0, 1, 0, 1, 1, 0, 1, 0, 1}, f.real().attentionMask());
        assertArrayEquals(new int[] {X, X, X, X, X, 113, 2, 97, 2, 2}, f.real().labels());
        assertArrayEquals(new int[] {83, 2, 113, 2, 62, 103, 2, 2}, f.generated().ids());
    }

    @Test
    void anEmptyBatchIsRefused() {
        SpinCollator collator = new SpinCollator(new CharTokenizer(), SHORT, PAD, SequenceLimits.REFERENCE);
        assertThrows(IllegalArgumentException.class, () -> collator.collate(List.of()));
    }

    @Test
    void theRealTokenizerSeesPromptsLongerThan512TokensWhole() {
        String longQuestion = "Please explain this in simple words. ".repeat(120);
        try (Tokenizer tokenizer = TestTokenizer.load()) {
            int questionTokens = tokenizer.encode(longQuestion).length;
            assertTrue(questionTokens > 600, questionTokens + " tokens");
            SpinCollator roomy = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(),
                    new SequenceLimits(4096, 2048, TruncationMode.KEEP_END));
            SpinFeatures whole = roomy.features(0, record(longQuestion, "Sure.", ""));
            int[] expectedPrompt = tokenizer.encode("<|system|>\n</s>\n<|user|>\n" + longQuestion + "</s>\n<|assistant|>\n");
            assertEquals(expectedPrompt.length, whole.promptLength());
            assertArrayEquals(expectedPrompt, Arrays.copyOf(whole.real().ids(), whole.promptLength()));
            int[] expectedResponse = tokenizer.encode("Sure.</s>\n");
            int[] response = Arrays.copyOfRange(whole.real().ids(), whole.promptLength(), whole.real().length());
            assertArrayEquals(expectedResponse, Arrays.copyOf(response, response.length - 1));
            assertEquals(tokenizer.eosId(), response[response.length - 1]);

            // The reference's limits (1024, 512, keep_end): the prompt keeps its last 512 tokens, which end with the assistant cue.
            SpinCollator reference = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(), SequenceLimits.REFERENCE);
            SpinFeatures cut = reference.features(0, record(longQuestion + longQuestion, "Sure.", ""));
            assertEquals(512, cut.promptLength());
            int[] cue = tokenizer.encode("</s>\n<|assistant|>\n");
            assertArrayEquals(cue, Arrays.copyOfRange(cut.real().ids(), 512 - cue.length, 512));
        }
    }
}
