package spin.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.SpinLossType;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.data.SequenceLimits;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.data.SpinRecord;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.text.ChatMessage;
import spin.text.Tokenizer;

/**
 * The reference's logits/* metrics (SPINTrainer.get_batch_metrics): {@code policy_real_logits.mean()}
 * over the whole real half of the concatenated batch, [B, T, V] with T the longer half's length,
 * prompt and padded positions included. The objective runs the fused lm_head + log-prob in chunks;
 * checked against the same mean taken here in double over the logits of an independent unfused
 * forward of the collated batch.
 */
class SpinObjectiveMetricsTest {
    @TempDir
    Path dir;

    @Test
    void logitsMetricsAverageEveryPositionOfEachHalfIncludingPadding() throws IOException {
        Path modelDir = TinyTrainingData.model(dir.resolve("model"));
        try (Tokenizer tokenizer = Tokenizer.load(modelDir);
                CpuBackend cpu = new CpuBackend(2);
                MistralModel model = ModelCheckpoint.load(modelDir, cpu)) {
            SpinCollator collator = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(),
                    SequenceLimits.REFERENCE);
            // real answers short, generated ones long (and the other way round), so both halves carry padding
            List<SpinRecord> records = List.of(
                    record("what is up?", "ok", "a much longer generated answer than the real one"),
                    record("and now?", "a long real answer with several more words in it", "no"));
            List<SpinFeatures> features = new ArrayList<>();
            for (int i = 0; i < records.size(); i++) {
                features.add(collator.features(i, records.get(i)));
            }
            SpinBatch batch = collator.collate(features);
            model.setLogProbChunkRows(3); // fused, in several chunks with a short last one
            try (PrecomputedOpponent opponent = PrecomputedOpponent.score(model, collator, List.of(), records, 2, null)) {
                SpinObjective objective = new SpinObjective(model, collator, opponent, 0.1f, SpinLossType.SIGMOID);
                double[] metrics;
                try (Tensor values = cpu.allocate(DType.F64, objective.metricNames().size())) {
                    objective.evaluate(batch, values);
                    metrics = cpu.readDoubles(values);
                }
                double real = metrics[objective.metricNames().indexOf("logits/real")];
                double generated = metrics[objective.metricNames().indexOf("logits/generated")];
                double[] means = halfMeans(model, cpu, batch);
                assertEquals(means[0], real, 1e-6 * Math.max(1, Math.abs(means[0])));
                assertEquals(means[1], generated, 1e-6 * Math.max(1, Math.abs(means[1])));
                assertTrue(means[0] != means[1], "the halves differ, so a swap would be caught");
            }
        }
    }

    private static SpinRecord record(String q, String real, String generated) {
        return new SpinRecord(List.of(ChatMessage.user(q), ChatMessage.assistant(real)),
                List.of(ChatMessage.user(q), ChatMessage.assistant(generated)));
    }

    /** Means of the logits of rows [0, B) and [B, 2B) over all T * V entries, in double. */
    private static double[] halfMeans(MistralModel model, Backend backend, SpinBatch batch) {
        model.setLogProbChunkRows(0); // unfused, so the forward keeps its logits (the objective ran fused)
        try (SpinBatch.Tensors in = batch.upload(backend);
                MistralModel.ForwardState state = model.forward(in.ids(), in.keyMask(), in.targets())) {
            float[] logits = backend.read(state.logits());
            int half = logits.length / 2;
            double real = 0, generated = 0;
            for (int i = 0; i < half; i++) {
                real += logits[i];
                generated += logits[half + i];
            }
            return new double[] {real / half, generated / half};
        }
    }
}
