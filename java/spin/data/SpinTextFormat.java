package spin.data;

import java.util.ArrayList;
import java.util.List;
import spin.text.ChatMessage;
import spin.text.ChatTemplate;

/**
 * The training text of a record, as alignment-handbook's {@code apply_chat_template(task="spin")}
 * builds it. Prompt: the template over [system, first user turn of real] with the generation
 * prompt, where the system turn is real[0] if that is a system turn and an empty one otherwise.
 * Responses: the template over real[1:] and generated[1:], with a leading
 * {@code <|assistant|>\n} removed. With zephyr's template that gives the prompt
 * {@code <|system|>\n</s>\n<|user|>\n{q}</s>\n<|assistant|>\n} and the response {@code {a}</s>\n}.
 *
 * <p>Like the reference, the responses start at index 1 even when real[0] is a system turn; the
 * response then repeats the user turn. This keeps results comparable with the reference.
 */
public final class SpinTextFormat {
    /** The prefix the reference strips from responses; it is zephyr's assistant cue, whatever the template. */
    public static final String ASSISTANT_PREFIX = "<|assistant|>\n";

    private final ChatTemplate template;

    public SpinTextFormat(ChatTemplate template) {
        this.template = template;
    }

    /** The three texts that are tokenized separately. */
    public record SpinText(String prompt, String real, String generated) {}

    public SpinText render(SpinRecord record) {
        return new SpinText(prompt(record), response(record.real()), response(record.generated()));
    }

    /** The prompt alone: what the model answers in training, and in generation with the chat prompt format. */
    public String prompt(SpinRecord record) {
        List<ChatMessage> real = record.real();
        ChatMessage system = real.get(0).role().equals(ChatMessage.SYSTEM) ? real.get(0) : ChatMessage.system("");
        return template.render(List.of(system, GenerationRecords.question(record)), true);
    }

    private String response(List<ChatMessage> conversation) {
        String text = template.render(new ArrayList<>(conversation.subList(1, conversation.size())), false);
        return text.startsWith(ASSISTANT_PREFIX) ? text.substring(ASSISTANT_PREFIX.length()) : text;
    }
}
