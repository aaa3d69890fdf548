package spin.data;

import java.util.List;
import spin.text.ChatMessage;

/**
 * Parses SPIN rows ({@code {"real": [...], "generated": [...]}}). Each list must be an optional
 * system turn, a user turn, then the assistant's answer (more turns may follow): the prompt is the
 * first user turn and the response starts right after it.
 */
public final class SpinRows {
    private SpinRows() {}

    public static SpinRecord parse(DataRow row) {
        return new SpinRecord(conversation(row, "real"), conversation(row, "generated"));
    }

    static List<ChatMessage> conversation(DataRow row, String field) {
        List<ChatMessage> messages = MessageFields.read(row, field);
        int user = !messages.isEmpty() && messages.get(0).role().equals(ChatMessage.SYSTEM) ? 1 : 0;
        expectRole(row, field, messages, user, ChatMessage.USER);
        expectRole(row, field, messages, user + 1, ChatMessage.ASSISTANT);
        return messages;
    }

    private static void expectRole(DataRow row, String field, List<ChatMessage> messages, int index, String role) {
        if (index >= messages.size()) {
            throw new InvalidRowException(row, field, "has " + messages.size() + " message(s) but needs a \"" + role
                    + "\" turn at position " + index + " (shape: [system,] user, assistant)");
        }
        String actual = messages.get(index).role();
        if (!actual.equals(role)) {
            throw new InvalidRowException(row, field + "[" + index + "].role", "is \"" + actual + "\" but must be \"" + role
                    + "\" (shape: [system,] user, assistant)");
        }
    }
}
