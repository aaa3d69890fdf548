package spin.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.Backend;
import spin.backend.DeviceUnderTest;
import spin.dist.Communicator;
import spin.dist.Communicators;

/**
 * One ZeRO-3 rank on the real GPU through real NCCL (world size 1): a few SPIN steps follow the
 * single-device path on the same GPU (fp32; the sharded backward accumulates each micro-batch into
 * its own unit buffer, so to fp32 tolerance, not bits). Several GPUs cannot be tested here.
 */
@Tag("gpu")
class GpuZeroTrainingTest {
    @TempDir
    Path dir;

    @Test
    void oneRankThroughNcclFollowsTheSingleDevicePath() throws IOException {
        Path model = TinyTrainingData.model(dir.resolve("model")), data = TinyTrainingData.reversals(dir.resolve("data"), ".jsonl");
        Map<String, Object> s = new HashMap<>();
        s.put("model_name_or_path", model.toString());
        s.put("dataset_mixer", Map.of(data.toString(), 1.0));
        s.put("learning_rate", 1e-3);
        s.put("per_device_train_batch_size", 2);
        s.put("gradient_accumulation_steps", 2);
        s.put("max_steps", 3);
        s.put("logging_steps", 1);
        s.put("save_strategy", "no");
        s.put("max_length", 32);
        s.put("max_prompt_length", 16);
        s.put("bf16", false);
        s.put("precision", "fp32");
        s.put("device", "cuda:0");
        Path single = dir.resolve("single"), sharded = dir.resolve("sharded");
        s.put("output_dir", single.toString());
        PrintWriter quiet = new PrintWriter(new StringWriter());
        try (Backend gpu = DeviceUnderTest.openOrSkip("cuda:0")) {
            Trainer.run(TrainConfig.of(s), Trainer.Mode.SPIN, false, quiet);
            s.put("output_dir", sharded.toString());
            List<Communicator> group = Communicators.inProcess(List.of(gpu));
            try {
                Trainer.run(TrainConfig.of(s), Trainer.Mode.SPIN, false, group, quiet);
            } finally {
                group.forEach(Communicator::close);
            }
        }
        List<JsonNode> expected = TinyTrainingData.metrics(single), actual = TinyTrainingData.metrics(sharded);
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            for (String key : List.of("loss", "grad_norm", "rewards/margins")) {
                double want = expected.get(i).get(key).asDouble();
                assertEquals(want, actual.get(i).get(key).asDouble(), 1e-4 * (1 + Math.abs(want)), "line " + i + " " + key);
            }
        }
        Map<String, float[]> a = TinyTrainingData.weights(single), b = TinyTrainingData.weights(sharded);
        double apart = 0;
        for (String name : a.keySet()) {
            for (int i = 0; i < a.get(name).length; i++) {
                apart = Math.max(apart, Math.abs(a.get(name)[i] - b.get(name)[i]));
            }
        }
        System.out.printf("[zero-3 world 1 on cuda:0 through NCCL] largest weight difference from one device: %.3g%n", apart);
        assertEquals(0, apart, 1e-4);
    }
}
