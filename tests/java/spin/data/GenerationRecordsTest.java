package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import spin.text.ChatMessage;
import spin.text.ChatTemplate;

/** The reference generate.py's data rules: prompt strings, question and gold turns, answer cleaning, shard records and names. */
class GenerationRecordsTest {
    private static final ChatTemplate ZEPHYR = new ChatTemplate(ChatTemplate.ZEPHYR, Map.of("eos_token", "</s>"));
    private static final SpinRecord PLAIN = new SpinRecord(List.of(ChatMessage.user("Q"), ChatMessage.assistant("A")),
            List.of(ChatMessage.user("Q"), ChatMessage.assistant("")));
    private static final SpinRecord WITH_SYSTEM = new SpinRecord(
            List.of(ChatMessage.system("Be brief."), ChatMessage.user("Q"), ChatMessage.assistant("A")),
            List.of(ChatMessage.user("Q"), ChatMessage.assistant("")));

    @Test
    void promptsAreTheReferencesInstructionOrTheTrainingChatPrompt() {
        assertEquals("### Instruction: Q\n\n### Response: ", PromptFormat.INSTRUCTION.render(PLAIN, ZEPHYR));
        assertEquals("<|system|>\n</s>\n<|user|>\nQ</s>\n<|assistant|>\n", PromptFormat.CHAT.render(PLAIN, ZEPHYR));
        assertEquals("<|system|>\nBe brief.</s>\n<|user|>\nQ</s>\n<|assistant|>\n", PromptFormat.CHAT.render(WITH_SYSTEM, ZEPHYR));
        assertEquals("<|system|>\n</s>\n<|user|>\nHi</s>\n<|assistant|>\n", PromptFormat.CHAT.render("Hi", ZEPHYR));
        assertEquals(PromptFormat.CHAT, PromptFormat.parse("chat"));
    }

    @Test
    void theQuestionIsTheFirstUserTurnAndTheGoldTheTurnAfterIt() {
        SpinRecord expected = new SpinRecord(List.of(ChatMessage.user("Q"), ChatMessage.assistant("A")),
                List.of(ChatMessage.user("Q"), ChatMessage.assistant("answer")));
        assertEquals(expected, GenerationRecords.withAnswer(PLAIN, "answer"));
        assertEquals(expected, GenerationRecords.withAnswer(WITH_SYSTEM, "answer"));
    }

    @Test
    void answersLoseEveryEosTextAndLeadingPythonWhitespace() {
        assertEquals("Hello world", GenerationRecords.cleanAnswer(" \u00a0\nHello</s> world</s>"));
        assertEquals("x </s", GenerationRecords.cleanAnswer("</s>\t x </s"));
        assertEquals("", GenerationRecords.cleanAnswer("</s></s>"));
    }

    @Test
    void shardNamesAreTheReferences() {
        assertEquals("loser_3.jsonl", GenerationShards.fileName(3, false));
        assertEquals("loser_0_test.jsonl", GenerationShards.fileName(0, true));
    }
}
