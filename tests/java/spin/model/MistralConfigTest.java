package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MistralConfigTest {
    @TempDir
    Path dir;

    /** The config.json of mistralai/Mistral-7B-v0.1 as published. */
    private static final String MISTRAL_7B = """
            {
              "architectures": ["MistralForCausalLM"],
              "bos_token_id": 1,
              "eos_token_id": 2,
              "hidden_act": "silu",
              "hidden_size": 4096,
              "initializer_range": 0.02,
              "intermediate_size": 14336,
              "max_position_embeddings": 32768,
              "model_type": "mistral",
              "num_attention_heads": 32,
              "num_hidden_layers": 32,
              "num_key_value_heads": 8,
              "rms_norm_eps": 1e-05,
              "rope_theta": 10000.0,
              "sliding_window": 4096,
              "tie_word_embeddings": false,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.34.0.dev0",
              "use_cache": true,
              "vocab_size": 32000
            }
            """;

    private MistralConfig read(String json) throws IOException {
        Files.writeString(dir.resolve("config.json"), json);
        return MistralConfig.read(dir);
    }

    @Test
    void readsTheMistral7bConfigAsThePreset() throws IOException {
        MistralConfig c = read(MISTRAL_7B);
        assertEquals(MistralConfig.mistral7b(), c);
        assertEquals(128, c.headDim());
        assertEquals(7_241_732_096L, new ParameterLayout(c).totalSize(), "Mistral-7B's published parameter count");
    }

    @Test
    void writtenConfigReadsBackEqual() throws IOException {
        for (MistralConfig c : new MistralConfig[] {MistralConfig.tiny(), MistralConfig.small(), TinyModels.config()}) {
            assertEquals(c, read(c.toJson("float32")));
        }
    }

    @Test
    void nullSlidingWindowMeansNone() throws IOException {
        assertEquals(0, read(MISTRAL_7B.replace("\"sliding_window\": 4096", "\"sliding_window\": null")).slidingWindow());
    }

    private void assertRejected(String json, String expected) {
        IOException e = assertThrows(IOException.class, () -> read(json));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertTrue(e.getMessage().contains("config.json"), "names the file: " + e.getMessage());
    }

    @Test
    void missingOrInconsistentKeysAreNamed() {
        assertRejected(MISTRAL_7B.replace("\"hidden_size\": 4096,", ""), "missing required key \"hidden_size\"");
        assertRejected(MISTRAL_7B.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"),
                "num_attention_heads (32) must be a multiple of num_key_value_heads (5)");
        assertRejected(MISTRAL_7B.replace("\"vocab_size\": 32000", "\"vocab_size\": \"big\""), "\"vocab_size\" must be an integer");
        assertRejected(MISTRAL_7B.replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""), "hidden_act is \"gelu\"");
        assertRejected(MISTRAL_7B.replace("\"model_type\": \"mistral\"", "\"model_type\": \"llama\""), "model_type is \"llama\"");
        assertRejected(MISTRAL_7B.replace("\"hidden_size\": 4096", "\"hidden_size\": 4100"),
                "hidden_size (4100) is not a multiple of num_attention_heads (32)");
        assertRejected("{ not json", "not valid JSON");
    }
}
