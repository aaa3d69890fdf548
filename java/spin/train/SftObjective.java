package spin.train;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.model.MistralModel;

/**
 * Supervised fine-tuning: mean cross-entropy over the answer tokens (and the appended EOS) of the
 * real conversations; prompt tokens are context only, as in completion-only SFT.
 */
final class SftObjective implements TrainingObjective {
    private final MistralModel model;
    private final SpinCollator collator;

    SftObjective(MistralModel model, SpinCollator collator) {
        this.model = model;
        this.collator = collator;
    }

    @Override
    public SpinBatch collate(List<SpinFeatures> records) {
        return collator.collateReal(records);
    }

    @Override
    public double weight(SpinBatch batch) {
        return batch.scoredTokens();
    }

    @Override
    public Map<String, Double> train(SpinBatch batch, double share, long step) {
        return run(batch, share, step);
    }

    @Override
    public Map<String, Double> evaluate(SpinBatch batch) {
        return run(batch, 0, -1);
    }

    private Map<String, Double> run(SpinBatch batch, double share, long step) {
        Backend backend = model.backend();
        int tokens = batch.scoredTokens();
        if (tokens == 0) {
            throw new IllegalArgumentException("a batch of records " + batch + " has no answer tokens to learn from");
        }
        try (SpinBatch.Tensors in = batch.upload(backend);
                MistralModel.ForwardState state = model.forward(in.ids(), in.keyMask(), in.targets())) {
            double loss = -backend.sum(state.tokenLogps()) / tokens;
            if (!Double.isFinite(loss)) {
                throw new TrainingDivergedException("step " + step + ": the cross-entropy loss is " + loss);
            }
            if (share > 0) {
                try (Tensor dTokenLogps = backend.allocate(DType.F32, batch.rows(), batch.length())) {
                    // d(share * mean NLL)/d(logp) at every scored token; ignored positions get no gradient
                    backend.fill(dTokenLogps, (float) (-share / tokens));
                    model.backward(state, dTokenLogps);
                }
            }
            Map<String, Double> metrics = new LinkedHashMap<>();
            metrics.put("loss", loss);
            return metrics;
        }
    }
}
