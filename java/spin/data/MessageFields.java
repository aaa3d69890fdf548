package spin.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.POJONode;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import spin.text.ChatMessage;

/** Reads a list of chat messages ({@code [{"role": ..., "content": ...}, ...]}) out of a row, strictly. */
final class MessageFields {
    private static final Set<String> ROLES = Set.of(ChatMessage.SYSTEM, ChatMessage.USER, ChatMessage.ASSISTANT);

    private MessageFields() {}

    static List<ChatMessage> read(DataRow row, String field) {
        if (!row.value().isObject()) {
            throw new InvalidRowException(row, "the row", "must be a JSON object, got " + describe(row.value()));
        }
        JsonNode list = row.value().get(field);
        if (list == null || list.isNull()) {
            throw new InvalidRowException(row, field, "is missing");
        }
        if (!list.isArray()) {
            throw new InvalidRowException(row, field, "must be a list of messages, got " + describe(list));
        }
        List<ChatMessage> messages = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            JsonNode m = list.get(i);
            String at = field + "[" + i + "]";
            if (!m.isObject()) {
                throw new InvalidRowException(row, at, "must be an object with \"role\" and \"content\", got " + describe(m));
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual()) {
                throw new InvalidRowException(row, at + ".role", role == null || role.isNull() ? "is missing"
                        : "must be a string, got " + describe(role));
            }
            if (!ROLES.contains(role.asText())) {
                throw new InvalidRowException(row, at + ".role", "is \"" + role.asText() + "\"; use system, user or assistant");
            }
            JsonNode content = m.get("content");
            if (content == null || !content.isTextual()) {
                throw new InvalidRowException(row, at + ".content", content == null || content.isNull() ? "is missing"
                        : "must be a string, got " + describe(content));
            }
            messages.add(new ChatMessage(role.asText(), content.asText()));
        }
        return messages;
    }

    static String describe(JsonNode node) {
        if (node instanceof POJONode pojo && pojo.getPojo() instanceof ParquetFiles.UnsupportedValue v) {
            return v.describe();
        }
        String text = node.toString();
        if (text.length() > 40) {
            text = text.substring(0, 37) + "...";
        }
        if (node.isNull()) {
            return "null";
        }
        String type = node.getNodeType().name().toLowerCase();
        return ("aeiou".indexOf(type.charAt(0)) >= 0 ? "an " : "a ") + type + " (" + text + ")";
    }
}
