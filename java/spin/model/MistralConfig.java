package spin.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * The architecture hyper-parameters of a Mistral model, read from and written to HF's
 * {@code config.json} with HF's key names and defaults.
 *
 * @param slidingWindow attention window in positions (a query sees this many keys including itself), 0 for none
 */
public record MistralConfig(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int headDim,
        int maxPositionEmbeddings,
        float rmsNormEps,
        float ropeTheta,
        int slidingWindow,
        boolean tieWordEmbeddings,
        float initializerRange,
        int bosTokenId,
        int eosTokenId) {

    public static final String GENERATION_FILE_NAME = "generation_config.json";
    public static final String FILE_NAME = "config.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    public MistralConfig {
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("intermediate_size", intermediateSize);
        requirePositive("num_hidden_layers", numHiddenLayers);
        requirePositive("num_attention_heads", numAttentionHeads);
        requirePositive("num_key_value_heads", numKeyValueHeads);
        requirePositive("head_dim", headDim);
        requirePositive("max_position_embeddings", maxPositionEmbeddings);
        if (numAttentionHeads % numKeyValueHeads != 0) {
            throw new IllegalArgumentException("num_attention_heads (" + numAttentionHeads
                    + ") must be a multiple of num_key_value_heads (" + numKeyValueHeads + ")");
        }
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("head_dim (" + headDim + ") must be even for rotary embeddings");
        }
        if (!(rmsNormEps > 0) || !(ropeTheta > 0)) {
            throw new IllegalArgumentException("rms_norm_eps and rope_theta must be positive, got " + rmsNormEps + " and " + ropeTheta);
        }
        if (slidingWindow < 0) {
            throw new IllegalArgumentException("sliding_window must be positive or null, got " + slidingWindow);
        }
        if ((long) numAttentionHeads * headDim > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("num_attention_heads x head_dim (" + numAttentionHeads + " x " + headDim
                    + ") is larger than a tensor dimension can be");
        }
        requireToken("bos_token_id", bosTokenId, vocabSize);
        requireToken("eos_token_id", eosTokenId, vocabSize);
    }

    private static void requireToken(String key, int id, int vocabSize) {
        if (id < 0 || id >= vocabSize) {
            throw new IllegalArgumentException(key + " must be a token id in [0, vocab_size " + vocabSize + "), got " + id);
        }
    }

    private static void requirePositive(String key, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(key + " must be a positive integer, got " + value);
        }
    }

    public int queryDim() {
        return numAttentionHeads * headDim;
    }

    public int keyValueDim() {
        return numKeyValueHeads * headDim;
    }

    /** Rows of the stacked q, k and v weights (one product gives all three): (H + 2 KVH) * D. */
    public int stackedQkvDim() {
        return queryDim() + 2 * keyValueDim();
    }

    // ---------------------------------------------------------------- presets

    /** A randomly initialised model small enough for tests and the CPU demo. */
    public static MistralConfig tiny() {
        return new MistralConfig(512, 64, 192, 2, 4, 2, 16, 2048, 1e-5f, 10000f, 128, false, 0.02f, 1, 2);
    }

    /** A model with Mistral's vocabulary and a few narrow layers: the CPU benchmark size. */
    public static MistralConfig small() {
        return new MistralConfig(32000, 512, 1408, 6, 8, 2, 64, 32768, 1e-5f, 10000f, 4096, false, 0.02f, 1, 2);
    }

    /** Mistral-7B-v0.1, the base of zephyr-7b-sft-full that SPIN starts from. */
    public static MistralConfig mistral7b() {
        return new MistralConfig(32000, 4096, 14336, 32, 32, 8, 128, 32768, 1e-5f, 10000f, 4096, false, 0.02f, 1, 2);
    }

    public static MistralConfig preset(String name) {
        return switch (name) {
            case "tiny" -> tiny();
            case "small" -> small();
            case "mistral-7b" -> mistral7b();
            default -> throw new IllegalArgumentException("unknown preset \"" + name + "\"; choose tiny, small or mistral-7b");
        };
    }

    // ---------------------------------------------------------------- config.json

    /** Reads {@code dir/config.json}; every error names the file and the key. */
    public static MistralConfig read(Path dir) throws IOException {
        Path file = dir.resolve(FILE_NAME);
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null, "no config.json: is " + dir + " an HF model directory?");
        }
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (JsonProcessingException e) {
            throw new IOException(file + ": not valid JSON (" + e.getOriginalMessage() + ")");
        }
        if (root == null || !root.isObject()) {
            throw new IOException(file + ": must hold a JSON object");
        }
        try {
            return fromJson(root);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    static MistralConfig fromJson(JsonNode root) {
        String modelType = optionalText(root, "model_type", "mistral");
        if (!modelType.equals("mistral")) {
            throw new IllegalArgumentException("model_type is \"" + modelType + "\"; spin runs \"mistral\" models");
        }
        String act = optionalText(root, "hidden_act", "silu");
        if (!act.equals("silu")) {
            throw new IllegalArgumentException("hidden_act is \"" + act + "\"; Mistral uses \"silu\"");
        }
        double dropout = root.has("attention_dropout") && !root.get("attention_dropout").isNull()
                ? number(root, "attention_dropout") : 0;
        if (dropout != 0) {
            throw new IllegalArgumentException("attention_dropout is " + dropout + "; spin trains without dropout, set it to 0.0");
        }
        if (root.has("rope_scaling") && !root.get("rope_scaling").isNull()) {
            throw new IllegalArgumentException("rope_scaling is set; spin supports plain RoPE only (rope_scaling: null)");
        }
        int hidden = integer(root, "hidden_size");
        int heads = integer(root, "num_attention_heads");
        int headDim;
        if (root.has("head_dim") && !root.get("head_dim").isNull()) {
            headDim = integer(root, "head_dim");
        } else {
            if (heads <= 0 || hidden % heads != 0) {
                throw new IllegalArgumentException("hidden_size (" + hidden + ") is not a multiple of num_attention_heads ("
                        + heads + "); give head_dim explicitly");
            }
            headDim = hidden / heads;
        }
        int kvHeads = root.has("num_key_value_heads") && !root.get("num_key_value_heads").isNull()
                ? integer(root, "num_key_value_heads") : heads;
        int window = root.has("sliding_window") && !root.get("sliding_window").isNull() ? integer(root, "sliding_window") : 0;
        return new MistralConfig(
                integer(root, "vocab_size"),
                hidden,
                integer(root, "intermediate_size"),
                integer(root, "num_hidden_layers"),
                heads,
                kvHeads,
                headDim,
                root.has("max_position_embeddings") ? integer(root, "max_position_embeddings") : 131072,
                root.has("rms_norm_eps") ? (float) number(root, "rms_norm_eps") : 1e-6f,
                root.has("rope_theta") ? (float) number(root, "rope_theta") : 10000f,
                window,
                root.has("tie_word_embeddings") && root.get("tie_word_embeddings").asBoolean(false),
                root.has("initializer_range") ? (float) number(root, "initializer_range") : 0.02f,
                root.has("bos_token_id") && !root.get("bos_token_id").isNull() ? integer(root, "bos_token_id") : 1,
                root.has("eos_token_id") && !root.get("eos_token_id").isNull() ? firstInteger(root, "eos_token_id") : 2);
    }

    private static int integer(JsonNode root, String key) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            throw new IllegalArgumentException("missing required key \"" + key + "\"");
        }
        if (!n.canConvertToExactIntegral() || !n.canConvertToInt()) {
            throw new IllegalArgumentException("\"" + key + "\" must be an integer, got " + n);
        }
        return n.asInt();
    }

    /** HF allows a list of end-of-sequence ids; the first is the one spin appends. */
    private static int firstInteger(JsonNode root, String key) {
        JsonNode n = root.get(key);
        if (n.isArray() && !n.isEmpty()) {
            ObjectNode wrapper = JSON.createObjectNode();
            wrapper.set(key, n.get(0));
            return integer(wrapper, key);
        }
        return integer(root, key);
    }

    private static double number(JsonNode root, String key) {
        JsonNode n = root.get(key);
        if (n == null || !n.isNumber()) {
            throw new IllegalArgumentException("\"" + key + "\" must be a number, got " + n);
        }
        return n.asDouble();
    }

    private static String optionalText(JsonNode root, String key, String fallback) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? fallback : n.asText();
    }

    /**
     * generation_config.json as HF's save_pretrained writes it beside config.json
     * (GenerationConfig.from_model_config): the BOS and EOS ids, so that HF generate and vLLM stop
     * where spin does. Only values that differ from GenerationConfig's defaults are written, as HF does.
     */
    public String generationConfigJson() {
        ObjectNode o = JSON.createObjectNode();
        o.put("_from_model_config", true);
        o.put("bos_token_id", bosTokenId);
        o.put("eos_token_id", eosTokenId);
        return o.toPrettyString() + "\n";
    }

    /** config.json as HF writes it for MistralForCausalLM. */
    public String toJson(String torchDtype) {
        ObjectNode o = JSON.createObjectNode();
        o.putArray("architectures").add("MistralForCausalLM");
        o.put("attention_dropout", 0.0);
        o.put("bos_token_id", bosTokenId);
        o.put("eos_token_id", eosTokenId);
        o.put("head_dim", headDim);
        o.put("hidden_act", "silu");
        o.put("hidden_size", hiddenSize);
        o.put("initializer_range", initializerRange);
        o.put("intermediate_size", intermediateSize);
        o.put("max_position_embeddings", maxPositionEmbeddings);
        o.put("model_type", "mistral");
        o.put("num_attention_heads", numAttentionHeads);
        o.put("num_hidden_layers", numHiddenLayers);
        o.put("num_key_value_heads", numKeyValueHeads);
        o.put("rms_norm_eps", rmsNormEps);
        o.put("rope_theta", ropeTheta);
        if (slidingWindow > 0) {
            o.put("sliding_window", slidingWindow);
        } else {
            o.putNull("sliding_window");
        }
        o.put("tie_word_embeddings", tieWordEmbeddings);
        o.put("torch_dtype", torchDtype);
        o.put("use_cache", true);
        o.put("vocab_size", vocabSize);
        return o.toPrettyString() + "\n";
    }
}
