package spin.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.ChildJvm;
import spin.backend.cpu.CpuBackend;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterLayout;
import spin.optim.Optimizer;
import spin.optim.OptimizerSettings;

/** optimizer.safetensors: the same bytes in every JVM, in a documented order; non-finite state is never saved. */
class OptimizerCheckpointTest {
    @TempDir
    static Path shared;
    private static Path model;

    @TempDir
    Path dir;

    @BeforeAll
    static void writeModel() throws IOException {
        model = TinyTrainingData.model(shared.resolve("model"));
    }

    /**
     * The header lists the metadata (keys in order), then exp_avg of every weight in the model's
     * layout order, then exp_avg_sq, then the fp32 master weights, with the data in that order.
     * {@code Map.of} orders differ between JVMs, so files written by three more JVMs must be the
     * same bytes too.
     */
    @Test
    void theOptimizerFileIsTheSameBytesInEveryJvmInTheDefinedOrder() throws Exception {
        Path file = WriteOptimizerCheckpoint.write(model, dir.resolve("here")).resolve(TrainingCheckpoints.OPTIMIZER_FILE);
        byte[] bytes = Files.readAllBytes(file);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8).strip();

        List<String> slots;
        try (CpuBackend cpu = new CpuBackend(1); MistralModel m = ModelCheckpoint.load(model, cpu)) {
            slots = m.parameters().layout().slots().stream().map(ParameterLayout.Slot::name).toList();
        }
        List<String> expected = new ArrayList<>(List.of("__metadata__", "optimizer", "steps"));
        for (String kind : new String[] {"exp_avg/", "exp_avg_sq/", "master/"}) {
            slots.forEach(s -> expected.add(kind + s));
        }
        List<String> names = new ArrayList<>();
        List<Long> offsets = new ArrayList<>();
        try (JsonParser p = new ObjectMapper().createParser(header)) {
            for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
                if (t == JsonToken.FIELD_NAME && !List.of("dtype", "shape", "data_offsets").contains(p.currentName())) {
                    names.add(p.currentName());
                } else if (t == JsonToken.VALUE_NUMBER_INT && "data_offsets".equals(p.getParsingContext().getParent().getCurrentName())) {
                    offsets.add(p.getLongValue());
                }
            }
        }
        assertEquals(expected, names);
        assertEquals(0L, offsets.getFirst());
        for (int i = 1; i + 1 < offsets.size(); i += 2) {
            assertEquals(offsets.get(i), offsets.get(i + 1), "tensor " + (i / 2 + 1) + " starts where the one before it ends");
        }

        for (int jvm = 0; jvm < 3; jvm++) {
            Path there = dir.resolve("jvm" + jvm);
            ChildJvm.Result r = ChildJvm.run(ChildJvm.command(WriteOptimizerCheckpoint.class, model.toString(), there.toString()), 120);
            assertEquals(0, r.exitCode(), r.output());
            assertArrayEquals(bytes, Files.readAllBytes(there.resolve("checkpoint-2").resolve(TrainingCheckpoints.OPTIMIZER_FILE)),
                    "JVM " + jvm);
        }
    }

    @Test
    void nonFiniteOptimizerStateIsNeverSaved() throws IOException {
        Path out = dir.resolve("poisoned");
        try (CpuBackend cpu = new CpuBackend(1); MistralModel m = ModelCheckpoint.load(model, cpu);
                Optimizer optimizer = new OptimizerSettings("adamw", 0f, 0.9f, 0.999f, 1e-8f).create(m)) {
            // finite weights, but a squared gradient that overflowed a float: Adam would never move that weight again
            cpu.fill(optimizer.state().get("exp_avg_sq").flat(), Float.POSITIVE_INFINITY);
            TrainingDivergedException e = assertThrows(TrainingDivergedException.class, () -> new TrainingCheckpoints(out).save(3, m,
                    optimizer, new ObjectMapper().createObjectNode(), model, ModelCheckpoint.StorageType.F32, null));
            assertTrue(e.getMessage().startsWith("step 3: the optimizer state exp_avg_sq holds NaN or Inf values"), e.getMessage());
        }
        if (Files.exists(out)) {
            try (Stream<Path> left = Files.list(out)) {
                assertFalse(left.findAny().isPresent(), "nothing written");
            }
        }
    }
}
