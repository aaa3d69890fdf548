package spin.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The parts of HF's {@code tokenizer_config.json} that SPIN needs: the special tokens and the chat
 * template. A {@code chat_template.jinja} beside it wins over the JSON key, as in transformers.
 *
 * @param chatTemplate the Jinja source, or null when the tokenizer has none
 * @param padToken null when the tokenizer has no pad token
 */
public record TokenizerConfig(String bosToken, String eosToken, String unkToken, String padToken, String chatTemplate) {
    public static final String FILE_NAME = "tokenizer_config.json";
    public static final String TEMPLATE_FILE_NAME = "chat_template.jinja";
    private static final ObjectMapper JSON = new ObjectMapper();

    public static TokenizerConfig read(Path dir) throws IOException {
        Path file = dir.resolve(FILE_NAME);
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null,
                    "no tokenizer_config.json: copy it from the model's HF repository next to tokenizer.json");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (JsonProcessingException e) {
            throw new IOException(file + ": not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new IOException(file + ": expected a JSON object");
        }
        String eos = token(file, root, "eos_token");
        if (eos == null) {
            throw new IOException(file + ": \"eos_token\" is missing; SPIN needs the end-of-sequence token (\"</s>\" for Mistral)");
        }
        Path templateFile = dir.resolve(TEMPLATE_FILE_NAME);
        String template = Files.isRegularFile(templateFile) ? Files.readString(templateFile) : template(file, root);
        return new TokenizerConfig(token(file, root, "bos_token"), eos, token(file, root, "unk_token"),
                token(file, root, "pad_token"), template);
    }

    /** A special token is written either as its text or as an AddedToken object with a "content" key. */
    private static String token(Path file, JsonNode root, String key) throws IOException {
        JsonNode node = root.get(key);
        if (node == null || node.isNull()) {
            return null;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isObject() && node.path("content").isTextual()) {
            return node.get("content").asText();
        }
        throw new IOException(file + ": \"" + key + "\" must be a string or an object with a \"content\" string, got " + node);
    }

    /** transformers writes either one template or a list of named ones, of which "default" is used. */
    private static String template(Path file, JsonNode root) throws IOException {
        JsonNode node = root.get("chat_template");
        if (node == null || node.isNull()) {
            return null;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isArray()) {
            for (JsonNode named : node) {
                if ("default".equals(named.path("name").asText(null)) && named.path("template").isTextual()) {
                    return named.get("template").asText();
                }
            }
            throw new IOException(file + ": \"chat_template\" is a list without an entry named \"default\"");
        }
        throw new IOException(file + ": \"chat_template\" must be a string or a list of {name, template}, got " + node.getNodeType());
    }

    /** The template to render with: the tokenizer's own, else the zephyr template the reference falls back to. */
    public ChatTemplate chatTemplateOrZephyr() {
        Map<String, String> tokens = new LinkedHashMap<>();
        putIfSet(tokens, "bos_token", bosToken);
        putIfSet(tokens, "eos_token", eosToken);
        putIfSet(tokens, "unk_token", unkToken);
        putIfSet(tokens, "pad_token", padToken);
        return new ChatTemplate(chatTemplate != null ? chatTemplate : ChatTemplate.ZEPHYR, tokens);
    }

    private static void putIfSet(Map<String, String> map, String key, String value) {
        if (value != null) {
            map.put(key, value);
        }
    }

    /** This configuration as tokenizer_config.json, in the layout of Mistral's (a Llama tokenizer). */
    public String toJson(int modelMaxLength) {
        ObjectNode root = JSON.createObjectNode();
        root.put("add_bos_token", true);
        root.put("add_eos_token", false);
        root.put("bos_token", bosToken);
        root.put("eos_token", eosToken);
        root.put("unk_token", unkToken);
        root.put("pad_token", padToken);
        root.put("clean_up_tokenization_spaces", false);
        root.put("legacy", true);
        root.put("model_max_length", modelMaxLength);
        root.put("tokenizer_class", "LlamaTokenizer");
        root.put("chat_template", chatTemplate);
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
