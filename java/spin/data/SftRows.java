package spin.data;

import java.util.List;
import spin.text.ChatMessage;

/**
 * Turns an SFT row ({@code {"messages": [...]}}, the ultrachat_200k layout) into a SPIN record as the
 * reference's reformat.py does: the first user turn and the assistant's answer to it are the real
 * conversation; the generated one has the same user turn and an empty answer, to be filled by
 * generation. Later turns are dropped.
 */
public final class SftRows {
    private SftRows() {}

    public static SpinRecord parse(DataRow row) {
        List<ChatMessage> messages = MessageFields.read(row, "messages");
        int user = 0;
        while (user < messages.size() && !messages.get(user).role().equals(ChatMessage.USER)) {
            user++;
        }
        if (user == messages.size()) {
            throw new InvalidRowException(row, "messages", "has no user turn");
        }
        if (user + 1 == messages.size()) {
            throw new InvalidRowException(row, "messages", "ends with the user turn at position " + user + "; an assistant answer must follow it");
        }
        ChatMessage answer = messages.get(user + 1);
        if (!answer.role().equals(ChatMessage.ASSISTANT)) {
            throw new InvalidRowException(row, "messages[" + (user + 1) + "].role",
                    "is \"" + answer.role() + "\" but the turn after the first user turn must be \"assistant\"");
        }
        ChatMessage question = messages.get(user);
        return new SpinRecord(List.of(question, answer), List.of(question, ChatMessage.assistant("")));
    }
}
