package spin.text;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * An HF tokenizer directory ({@code tokenizer.json} + {@code tokenizer_config.json}) run by the HF
 * tokenizers library through DJL.
 *
 * <p>{@link #encode} has the semantics of {@code tokenizer(text, add_special_tokens=False)}: no BOS
 * is added, special tokens written in the text ({@code </s>}) become their ids, and nothing is ever
 * truncated. DJL truncates to 512 tokens unless told otherwise, and would also read
 * tokenizer_config.json on its own; the tokenizer is therefore built from the JSON text with
 * truncation and padding off, and this class reads the config itself.
 */
public final class Tokenizer implements TokenEncoder, AutoCloseable {
    public static final String FILE_NAME = "tokenizer.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final HuggingFaceTokenizer hf;
    private final TokenizerConfig config;
    private final Map<String, Integer> tokenIds;
    private final int vocabSize;
    private final int eosId;
    private final int bosId;
    private final int padId;
    private final ChatTemplate chatTemplate;

    private Tokenizer(HuggingFaceTokenizer hf, TokenizerConfig config, Map<String, Integer> tokenIds, Path file)
            throws IOException {
        this.hf = hf;
        this.config = config;
        this.tokenIds = tokenIds;
        this.vocabSize = tokenIds.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        this.eosId = requireToken(config.eosToken(), "eos_token", file);
        // alignment-handbook's get_tokenizer: a tokenizer without a pad token pads with EOS.
        this.bosId = config.bosToken() == null ? -1 : requireToken(config.bosToken(), "bos_token", file);
        this.padId = config.padToken() == null ? eosId : requireToken(config.padToken(), "pad_token", file);
        this.chatTemplate = config.chatTemplateOrZephyr();
    }

    /** Loads {@code dir/tokenizer.json} and {@code dir/tokenizer_config.json}. */
    public static Tokenizer load(Path dir) throws IOException {
        Path file = dir.resolve(FILE_NAME);
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null,
                    "no tokenizer.json: copy the model's tokenizer files into " + dir
                            + " (./spin init-model writes one for the tiny model)");
        }
        TokenizerConfig config = TokenizerConfig.read(dir);
        Map<String, Integer> ids = tokenIds(file);
        Map<String, String> options = Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");
        HuggingFaceTokenizer hf;
        try (InputStream in = Files.newInputStream(file)) {
            hf = HuggingFaceTokenizer.newInstance(in, options);
        } catch (RuntimeException e) {
            throw new IOException(file + ": the HF tokenizers library cannot load it: " + e.getMessage(), e);
        }
        try {
            return new Tokenizer(hf, config, ids, file);
        } catch (IOException | RuntimeException e) {
            hf.close();
            throw e;
        }
    }

    /** Every token string with its id: the model's vocabulary and the added (special) tokens. */
    private static Map<String, Integer> tokenIds(Path file) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (JsonProcessingException e) {
            throw new IOException(file + ": not valid JSON: " + e.getOriginalMessage());
        }
        Map<String, Integer> ids = new HashMap<>();
        JsonNode vocab = root == null ? null : root.path("model").get("vocab");
        if (vocab == null || !(vocab.isObject() || vocab.isArray())) {
            throw new IOException(file + ": \"model.vocab\" is missing; is this an HF tokenizer.json?");
        }
        if (vocab.isObject()) { // BPE, WordPiece: token -> id
            for (Map.Entry<String, JsonNode> e : vocab.properties()) {
                ids.put(e.getKey(), e.getValue().asInt());
            }
        } else { // Unigram: [[token, score], ...], the id is the position
            for (int i = 0; i < vocab.size(); i++) {
                ids.put(vocab.get(i).path(0).asText(), i);
            }
        }
        for (JsonNode added : root.path("added_tokens")) {
            ids.put(added.path("content").asText(), added.path("id").asInt());
        }
        return ids;
    }

    private int requireToken(String token, String key, Path file) throws IOException {
        Integer id = tokenIds.get(token);
        if (id == null) {
            throw new IOException(file.resolveSibling(TokenizerConfig.FILE_NAME) + ": \"" + key + "\" is \"" + token
                    + "\", which " + file + " does not define");
        }
        return id;
    }

    /** Token ids of {@code text}: no special tokens added, special tokens in the text parsed, no truncation. */
    @Override
    public int[] encode(String text) {
        long[] ids = hf.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /** Text of {@code ids}; with {@code skipSpecialTokens} the special tokens are left out. */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] wide = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            wide[i] = ids[i];
        }
        return hf.decode(wide, skipSpecialTokens);
    }

    /** The id of a token string (vocabulary or added token), or -1. */
    public int tokenId(String token) {
        return tokenIds.getOrDefault(token, -1);
    }

    /** One more than the largest id: the smallest embedding table that can hold every token. */
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public int eosId() {
        return eosId;
    }

    /** The BOS token's id, or -1 when tokenizer_config.json names none. */
    public int bosId() {
        return bosId;
    }

    /** The pad token's id, or EOS's when the tokenizer has no pad token. */
    public int padId() {
        return padId;
    }

    public TokenizerConfig config() {
        return config;
    }

    public ChatTemplate chatTemplate() {
        return chatTemplate;
    }

    @Override
    public void close() {
        hf.close();
    }
}
