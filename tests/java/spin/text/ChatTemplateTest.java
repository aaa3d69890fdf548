package spin.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Expected strings are Python jinja2's output for the same templates (trim_blocks, lstrip_blocks), as HF renders them. */
class ChatTemplateTest {
    private static final ChatTemplate ZEPHYR = new ChatTemplate(ChatTemplate.ZEPHYR, Map.of("eos_token", "</s>", "bos_token", "<s>"));

    @Test
    void zephyrPromptAndResponseAreTheStringsOfTheDesignNotes() {
        assertEquals("<|system|>\n</s>\n<|user|>\nWhat is 2 + 3?</s>\n<|assistant|>\n",
                ZEPHYR.render(List.of(ChatMessage.system(""), ChatMessage.user("What is 2 + 3?")), true));
        assertEquals("<|assistant|>\nIt is 5.</s>\n", ZEPHYR.render(List.of(ChatMessage.assistant("It is 5.")), false));
    }

    @Test
    void everyRoleRendersItsTurnAndTheGenerationPromptComesOnlyWhenAsked() {
        List<ChatMessage> conversation = List.of(ChatMessage.system("Be brief."), ChatMessage.user("Q1"),
                ChatMessage.assistant("A1"), ChatMessage.user("Q2"));
        assertEquals("<|system|>\nBe brief.</s>\n<|user|>\nQ1</s>\n<|assistant|>\nA1</s>\n<|user|>\nQ2</s>\n<|assistant|>\n",
                ZEPHYR.render(conversation, true));
        assertEquals("<|system|>\nBe brief.</s>\n<|user|>\nQ1</s>\n<|assistant|>\nA1</s>\n<|user|>\nQ2</s>\n",
                ZEPHYR.render(conversation, false));
        assertEquals("", ZEPHYR.render(List.of(), true));
    }

    @Test
    void messageContentComesOutVerbatimEvenWhenItLooksLikeJinja() {
        String content = "Use {{ name }} and {% if x %} in templates; 3+4";
        assertEquals("<|user|>\n" + content + "</s>\n", ZEPHYR.render(List.of(ChatMessage.user(content)), false));
    }

    @Test
    void templatesCanUseBosTokenLoopIndexAndRaiseException() {
        ChatTemplate mistral = new ChatTemplate("{{ bos_token }}{% for message in messages %}"
                + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
                + "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
                + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
                Map.of("bos_token", "<s>", "eos_token", "</s>"));
        assertEquals("<s>[INST] Q [/INST]A</s>", mistral.render(List.of(ChatMessage.user("Q"), ChatMessage.assistant("A")), false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> mistral.render(List.of(ChatMessage.assistant("A")), false));
        assertEquals("chat template: Conversation roles must alternate user/assistant/user/assistant/...", e.getMessage());
    }

    @Test
    void escapedNewlinesInTemplateStringsBecomeNewlines() {
        // Templates stored with "\\n" in JSON hold a backslash escape inside the Jinja string literal.
        ChatTemplate escaped = new ChatTemplate("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}{% endfor %}",
                Map.of());
        assertEquals("<|user|>\nhi", escaped.render(List.of(ChatMessage.user("hi")), false));
    }

    @Test
    void aBrokenTemplateIsAnErrorNotEmptyText() {
        ChatTemplate broken = new ChatTemplate("{{ undefined_function(messages) }}", Map.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> broken.render(List.of(ChatMessage.user("x")), false));
        assertTrue(e.getMessage().startsWith("chat template: "), e.getMessage());
    }
}
