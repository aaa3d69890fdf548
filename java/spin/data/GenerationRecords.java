package spin.data;

import java.util.List;
import spin.text.ChatMessage;

/**
 * The reference's generate.py on the data side: which turn of a record is asked and which is the
 * gold answer, how the decoded answer is cleaned, and the record written to a generation shard.
 */
public final class GenerationRecords {
    /** The EOS text the reference removes from decoded answers wherever it occurs. */
    private static final String EOS_TEXT = "</s>";

    private GenerationRecords() {}

    /** The first user turn of {@code real}: the question. */
    public static ChatMessage question(SpinRecord record) {
        return record.real().stream().filter(m -> m.role().equals(ChatMessage.USER)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("the real conversation has no user turn"));
    }

    /** The turn after the question in {@code real}: the gold answer (real[1] when there is no system turn). */
    public static ChatMessage goldAnswer(SpinRecord record) {
        List<ChatMessage> real = record.real();
        return real.get(real.indexOf(question(record)) + 1);
    }

    /**
     * The reference's {@code r.replace("</s>", "").lstrip()} on the answer decoded with special
     * tokens kept; lstrip is Python's, which also strips no-break spaces that Java's strip keeps.
     */
    public static String cleanAnswer(String decoded) {
        return PythonWhitespace.lstrip(decoded.replace(EOS_TEXT, ""));
    }

    /**
     * The shard record: {@code {"real": [question, gold], "generated": [question, answer]}}, two
     * turns each as the reference writes them (a system turn of the source is not carried over).
     */
    public static SpinRecord withAnswer(SpinRecord source, String answer) {
        ChatMessage question = ChatMessage.user(question(source).content());
        return new SpinRecord(List.of(question, ChatMessage.assistant(goldAnswer(source).content())),
                List.of(question, ChatMessage.assistant(answer)));
    }
}
