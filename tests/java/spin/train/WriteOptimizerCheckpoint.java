package spin.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import spin.backend.cpu.CpuBackend;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.optim.Optimizer;
import spin.optim.OptimizerSettings;

/**
 * Two AdamW steps on fixed gradients, then a checkpoint: {@code java ... WriteOptimizerCheckpoint MODEL OUT}.
 * Run in several JVMs, whose {@code Map.of} iteration orders differ, to compare the files they write.
 */
public final class WriteOptimizerCheckpoint {
    private WriteOptimizerCheckpoint() {}

    public static void main(String[] args) throws Exception {
        write(Path.of(args[0]), Path.of(args[1]));
    }

    static Path write(Path modelDir, Path out) throws Exception {
        try (CpuBackend cpu = new CpuBackend(1); MistralModel model = ModelCheckpoint.load(modelDir, cpu);
                Optimizer optimizer = new OptimizerSettings("adamw", 0.01f, 0.9f, 0.999f, 1e-8f).create(model)) {
            for (int step = 1; step <= 2; step++) {
                cpu.fill(model.gradients().flat(), 0.01f * step);
                optimizer.step(1e-3f);
            }
            return new TrainingCheckpoints(out).save(2, model, optimizer, new ObjectMapper().createObjectNode().put("global_step", 2),
                    modelDir, ModelCheckpoint.StorageType.BF16, null);
        }
    }
}
