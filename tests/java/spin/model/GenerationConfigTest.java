package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * generation_config.json beside every written model, against the file transformers' own
 * save_pretrained writes for the same config (tests/fixtures/hub, made by tools/hub_fixtures.py).
 */
class GenerationConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Keys transformers writes that carry GenerationConfig's defaults, or its version: spin may leave them out. */
    private static final Set<String> HF_DEFAULTS = Set.of("output_attentions", "output_hidden_states", "use_cache",
            "transformers_version");

    @TempDir
    Path dir;

    @Test
    void aWrittenModelCarriesTheGenerationConfigTransformersWrites() throws IOException {
        ModelCheckpoint.writeInitialized(MistralConfig.tiny(), dir, ModelCheckpoint.StorageType.BF16, 1,
                ModelCheckpoint.DEFAULT_SHARD_BYTES);
        JsonNode ours = JSON.readTree(dir.resolve(MistralConfig.GENERATION_FILE_NAME).toFile());
        JsonNode hf = JSON.readTree(Path.of("tests", "fixtures", "hub", "generation_config-tiny.json").toFile());
        for (Map.Entry<String, JsonNode> e : hf.properties()) {
            if (!HF_DEFAULTS.contains(e.getKey())) {
                assertEquals(e.getValue(), ours.get(e.getKey()), e.getKey());
            }
        }
        for (Map.Entry<String, JsonNode> e : ours.properties()) {
            assertTrue(hf.has(e.getKey()), "transformers writes " + e.getKey() + " too");
        }
        assertEquals(2, ours.get("eos_token_id").asInt(), "HF generate and vLLM stop at </s>");
    }
}
