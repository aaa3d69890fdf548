package spin.data;

import java.util.List;
import spin.text.ChatMessage;

/**
 * One SPIN training example: the dataset's conversation ({@code real}) and the same prompt answered
 * by the opponent model ({@code generated}). Both start with an optional system turn, then the user
 * turn, then the assistant's answer: the shape {@link SpinRows} checks.
 */
public record SpinRecord(List<ChatMessage> real, List<ChatMessage> generated) {
    public SpinRecord {
        real = List.copyOf(real);
        generated = List.copyOf(generated);
    }
}
