package spin.train;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.Tensor;
import spin.data.LogProbScorer;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.model.MistralModel;

/**
 * The SPIN loss of DESIGN section 1 on pairs (real, generated) against a frozen opponent, with the
 * reference trainer's metrics: rewards/*, logps/* and logits/* (per micro-batch, the mean raw
 * logit over every position and vocabulary entry of the real, resp. generated, half of the
 * concatenated batch, prompt and padding included, as the reference's get_batch_metrics takes it;
 * {@link SpinCollator} pads as the reference does, so the padded positions see the same ids).
 */
final class SpinObjective implements TrainingObjective {
    private final MistralModel model;
    private final SpinCollator collator;
    private final Opponent opponent;
    private final float beta;
    private final SpinLossType lossType;

    SpinObjective(MistralModel model, SpinCollator collator, Opponent opponent, float beta, SpinLossType lossType) {
        this.model = model;
        this.collator = collator;
        this.opponent = opponent;
        this.beta = beta;
        this.lossType = lossType;
    }

    @Override
    public SpinBatch collate(List<SpinFeatures> records) {
        return collator.collate(records);
    }

    @Override
    public double weight(SpinBatch batch) {
        return batch.records();
    }

    @Override
    public Map<String, Double> train(SpinBatch batch, double share, long step) {
        return run(batch, Opponent.Split.TRAIN, share, step);
    }

    @Override
    public Map<String, Double> evaluate(SpinBatch batch) {
        return run(batch, Opponent.Split.TEST, 0, -1);
    }

    /** share 0 means evaluation: no backward pass. */
    private Map<String, Double> run(SpinBatch batch, Opponent.Split split, double share, long step) {
        Backend backend = model.backend();
        int b = batch.records();
        LogProbScorer.Scores opponentScores = opponent.scores(batch, split);
        try (SpinBatch.Tensors in = batch.upload(backend);
                Tensor perRow = backend.allocate(DType.F32, 2 * b);
                Tensor opponentReal = backend.fromHost(opponentScores.real(), b);
                Tensor opponentGenerated = backend.fromHost(opponentScores.generated(), b);
                MistralModel.ForwardState state = model.forward(in.ids(), in.keyMask(), in.targets())) {
            backend.rowSumForward(perRow, state.tokenLogps());
            Tensor policyReal = perRow.view(0, b), policyGenerated = perRow.view(b, b);
            SpinLossStats stats = backend.spinLossForward(policyReal, policyGenerated, opponentReal, opponentGenerated, beta,
                    lossType);
            if (!Double.isFinite(stats.loss())) {
                throw new TrainingDivergedException("step " + step + ": the SPIN loss is " + stats.loss());
            }
            // Means over each half's B*T*V logits, from the per-row sums the forward keeps whether it ran fused or not.
            Tensor logitRowSums = state.logitRowSums();
            int rowsPerHalf = Math.toIntExact(logitRowSums.size() / 2);
            double logitsPerHalf = (double) rowsPerHalf * model.config().vocabSize();
            Map<String, Double> metrics = new LinkedHashMap<>();
            metrics.put("loss", stats.loss());
            metrics.put("rewards/real", stats.rewardsReal());
            metrics.put("rewards/generated", stats.rewardsGenerated());
            metrics.put("rewards/accuracies", stats.rewardsAccuracy());
            metrics.put("rewards/margins", stats.rewardsMargin());
            metrics.put("logps/real", stats.logpsReal());
            metrics.put("logps/generated", stats.logpsGenerated());
            metrics.put("logits/real", backend.sum(logitRowSums.view(0, rowsPerHalf)) / logitsPerHalf);
            metrics.put("logits/generated", backend.sum(logitRowSums.view(rowsPerHalf, rowsPerHalf)) / logitsPerHalf);
            if (share > 0) {
                try (Tensor dPerRow = backend.allocate(DType.F32, 2 * b);
                        Tensor dTokenLogps = backend.allocate(DType.F32, 2 * b, batch.length())) {
                    backend.spinLossBackward(dPerRow.view(0, b), dPerRow.view(b, b), policyReal, policyGenerated,
                            opponentReal, opponentGenerated, beta, lossType, (float) share);
                    backend.rowSumBackward(dTokenLogps, dPerRow);
                    model.backward(state, dTokenLogps);
                }
            }
            return metrics;
        }
    }
}
