package spin.train;

import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.model.MistralModel;

/**
 * Supervised fine-tuning: mean cross-entropy over the answer tokens (and the appended EOS) of the
 * real conversations; prompt tokens are context only, as in completion-only SFT. Its one metric
 * is that loss.
 */
final class SftObjective implements TrainingObjective {
    private static final List<String> METRICS = List.of("loss");

    private final MistralModel model;
    private final SpinCollator collator;

    SftObjective(MistralModel model, SpinCollator collator) {
        this.model = model;
        this.collator = collator;
    }

    @Override
    public List<String> metricNames() {
        return METRICS;
    }

    @Override
    public String lossName() {
        return "cross-entropy loss";
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
    public void train(SpinBatch batch, double share, Tensor metrics) {
        run(batch, share, true, metrics);
    }

    @Override
    public void evaluate(SpinBatch batch, Tensor metrics) {
        run(batch, 0, false, metrics);
    }

    /** With {@code backward} the gradients of share x the loss are accumulated (zero ones at share 0: a ZeRO-3 filler). */
    private void run(SpinBatch batch, double share, boolean backward, Tensor metrics) {
        Backend backend = model.backend();
        int tokens = batch.scoredTokens();
        if (tokens == 0) {
            throw new IllegalArgumentException("a batch of records " + batch + " has no answer tokens to learn from");
        }
        try (SpinBatch.Tensors in = batch.upload(backend);
                MistralModel.ForwardState state = model.forward(in.ids(), in.keyMask(), in.targets())) {
            // The mean negative log-likelihood -sum/tokens as sum/(-tokens): IEEE division rounds
            // symmetrically, so the bits are those of negating the mean.
            backend.sum(metrics.reshape(1), state.tokenLogps(), -tokens);
            if (backward) {
                try (Tensor dTokenLogps = backend.allocate(DType.F32, batch.rows(), batch.length())) {
                    // d(share * mean NLL)/d(logp) at every scored token; ignored positions get no gradient
                    backend.fill(dTokenLogps, (float) (-share / tokens));
                    model.backward(state, dTokenLogps);
                }
            }
        }
    }
}
