package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import spin.data.SpinTextFormat.SpinText;
import spin.text.ChatMessage;
import spin.text.ChatTemplate;

class SpinTextFormatTest {
    private static final SpinTextFormat ZEPHYR = new SpinTextFormat(new ChatTemplate(ChatTemplate.ZEPHYR, Map.of("eos_token", "</s>")));

    @Test
    void promptAndResponsesAreTheDesignNotesStrings() {
        SpinRecord r = new SpinRecord(List.of(ChatMessage.user("What is 2 + 3?"), ChatMessage.assistant("5")),
                List.of(ChatMessage.user("What is 2 + 3?"), ChatMessage.assistant("Six.")));
        assertEquals(new SpinText("<|system|>\n</s>\n<|user|>\nWhat is 2 + 3?</s>\n<|assistant|>\n", "5</s>\n", "Six.</s>\n"),
                ZEPHYR.render(r));
    }

    @Test
    void anEmptyGeneratedAnswerStillRendersItsTurnEnd() {
        SpinRecord r = new SpinRecord(List.of(ChatMessage.user("q"), ChatMessage.assistant("a")),
                List.of(ChatMessage.user("q"), ChatMessage.assistant("")));
        assertEquals("</s>\n", ZEPHYR.render(r).generated());
    }

    @Test
    void aSystemTurnGoesIntoThePromptAndLikeTheReferenceTheRealResponseStartsAtIndexOne() {
        SpinRecord r = new SpinRecord(
                List.of(ChatMessage.system("Be brief."), ChatMessage.user("Q"), ChatMessage.assistant("A")),
                List.of(ChatMessage.user("Q"), ChatMessage.assistant("G")));
        SpinText text = ZEPHYR.render(r);
        assertEquals("<|system|>\nBe brief.</s>\n<|user|>\nQ</s>\n<|assistant|>\n", text.prompt());
        // real[1:] is [user, assistant]: the user turn is repeated and no prefix is stripped.
        assertEquals("<|user|>\nQ</s>\n<|assistant|>\nA</s>\n", text.real());
        assertEquals("G</s>\n", text.generated());
    }

    @Test
    void laterTurnsStayInTheResponse() {
        SpinRecord r = new SpinRecord(
                List.of(ChatMessage.user("Q1"), ChatMessage.assistant("A1"), ChatMessage.user("Q2"), ChatMessage.assistant("A2")),
                List.of(ChatMessage.user("Q1"), ChatMessage.assistant("G1")));
        assertEquals("A1</s>\n<|user|>\nQ2</s>\n<|assistant|>\nA2</s>\n", ZEPHYR.render(r).real());
    }
}
