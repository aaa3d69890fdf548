package spin.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.BFloat16;
import spin.backend.cpu.CpuBackend;
import spin.io.SafetensorsCheckpoint;
import spin.model.ModelCheckpoint.StorageType;

class ModelCheckpointTest {
    @TempDir
    Path dir;

    @Test
    void f32SaveAndLoadIsExactAndShardingDoesNotChangeIt() throws IOException {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = TinyModels.random(cpu, 11)) {
            float[] original = cpu.read(model.parameters().flat());
            ModelCheckpoint.save(model, dir.resolve("one"), StorageType.F32, Long.MAX_VALUE);
            ModelCheckpoint.save(model, dir.resolve("sharded"), StorageType.F32, 20_000);
            assertTrue(Files.exists(dir.resolve("sharded").resolve(SafetensorsCheckpoint.INDEX_FILE)));
            for (String variant : new String[] {"one", "sharded"}) {
                try (MistralModel loaded = ModelCheckpoint.load(dir.resolve(variant), cpu)) {
                    assertEquals(model.config(), loaded.config());
                    assertArrayEquals(original, cpu.read(loaded.parameters().flat()), variant);
                }
            }
        }
    }

    @Test
    void bf16SaveRoundsEachWeightToNearestEven() throws IOException {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = TinyModels.random(cpu, 12)) {
            ModelCheckpoint.save(model, dir, StorageType.BF16, Long.MAX_VALUE);
            assertTrue(Files.readString(dir.resolve("config.json")).contains("\"torch_dtype\" : \"bfloat16\""));
            float[] original = cpu.read(model.parameters().flat());
            try (MistralModel loaded = ModelCheckpoint.load(dir, cpu)) {
                float[] read = cpu.read(loaded.parameters().flat());
                for (int i = 0; i < original.length; i++) {
                    assertEquals(BFloat16.toFloat(BFloat16.fromFloat(original[i])), read[i], 0f, "element " + i);
                }
            }
        }
    }

    @Test
    void initializedCheckpointEqualsInitializedModel() throws IOException {
        MistralConfig config = TinyModels.config();
        ModelCheckpoint.writeInitialized(config, dir, StorageType.F32, 5, Long.MAX_VALUE);
        try (CpuBackend cpu = new CpuBackend(1); MistralModel direct = new MistralModel(config, cpu);
                MistralModel loaded = ModelCheckpoint.load(dir, cpu)) {
            ModelCheckpoint.initialize(direct, 5);
            assertArrayEquals(cpu.read(direct.parameters().flat()), cpu.read(loaded.parameters().flat()));
            float[] embed = cpu.read(direct.parameters().get(ParameterLayout.Names.EMBED));
            double sumSq = 0;
            for (float v : embed) {
                sumSq += v * v;
            }
            double std = Math.sqrt(sumSq / embed.length);
            assertEquals(config.initializerRange(), std, 0.1 * config.initializerRange(), "HF init: normal(0, initializer_range)");
            for (float v : cpu.read(direct.parameters().get(ParameterLayout.Names.FINAL_NORM))) {
                assertEquals(1f, v);
            }
        }
    }

    @Test
    void weightsThatDisagreeWithTheConfigAreRefusedByName() throws IOException {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = TinyModels.random(cpu, 13)) {
            ModelCheckpoint.save(model, dir, StorageType.F32, Long.MAX_VALUE);
        }
        String config = Files.readString(dir.resolve("config.json"));
        Files.writeString(dir.resolve("config.json"), config.replace("\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 3"));
        try (CpuBackend cpu = new CpuBackend(1)) {
            IOException e = assertThrows(IOException.class, () -> ModelCheckpoint.load(dir, cpu));
            assertTrue(e.getMessage().contains("missing [model.layers.2."), e.getMessage());
            Files.writeString(dir.resolve("config.json"), config.replace("\"intermediate_size\" : 48", "\"intermediate_size\" : 40"));
            e = assertThrows(IOException.class, () -> ModelCheckpoint.load(dir, cpu));
            assertTrue(e.getMessage().contains("model.layers.0.mlp.gate_proj.weight\" has shape [48, 32] but config.json implies [40, 32]"),
                    e.getMessage());
        }
    }
}
