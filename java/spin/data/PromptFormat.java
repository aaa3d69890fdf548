package spin.data;

import java.util.List;
import spin.text.ChatMessage;
import spin.text.ChatTemplate;

/** How a record's question is put to the model when generating its answer. */
public enum PromptFormat {
    /** The reference's {@code "### Instruction: " + q + "\n\n### Response: "}, tokenized without BOS. */
    INSTRUCTION,
    /**
     * The chat template over the training prompt's turns with the generation prompt
     * ({@link SpinTextFormat#prompt}): the model answers exactly the prompt its answer is later
     * scored under.
     */
    CHAT;

    public static PromptFormat parse(String name) {
        return switch (name) {
            case "instruction" -> INSTRUCTION;
            case "chat" -> CHAT;
            default -> throw new IllegalArgumentException("unknown prompt format \"" + name + "\"; use instruction or chat");
        };
    }

    /** The prompt for a lone question, as if it were the first user turn of a record without a system turn. */
    public String render(String question, ChatTemplate template) {
        List<ChatMessage> turns = List.of(ChatMessage.user(question), ChatMessage.assistant(""));
        return render(new SpinRecord(turns, turns), template);
    }

    public String render(SpinRecord record, ChatTemplate template) {
        return switch (this) {
            case INSTRUCTION -> "### Instruction: " + GenerationRecords.question(record).content() + "\n\n### Response: ";
            case CHAT -> new SpinTextFormat(template).prompt(record);
        };
    }
}
