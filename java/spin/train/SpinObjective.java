package spin.train;

import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.Tensor;
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
 * Everything, the opponent's numbers included, stays on the backend.
 */
final class SpinObjective implements TrainingObjective {
    /** The loss statistics' names, then the two logit means. */
    private static final List<String> METRICS;
    private static final int LOGITS_REAL = SpinLossStats.COUNT, LOGITS_GENERATED = SpinLossStats.COUNT + 1;

    static {
        List<String> names = new ArrayList<>(SpinLossStats.NAMES);
        names.add("logits/real");
        names.add("logits/generated");
        METRICS = List.copyOf(names);
    }

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
    public List<String> metricNames() {
        return METRICS;
    }

    @Override
    public String lossName() {
        return "SPIN loss";
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
    public void train(SpinBatch batch, double share, Tensor metrics) {
        run(batch, Opponent.Split.TRAIN, share, true, metrics);
    }

    @Override
    public void evaluate(SpinBatch batch, Tensor metrics) {
        run(batch, Opponent.Split.TEST, 0, false, metrics);
    }

    /** With {@code backward} the gradients of share x the loss are accumulated (zero ones at share 0: a ZeRO-3 filler). */
    private void run(SpinBatch batch, Opponent.Split split, double share, boolean backward, Tensor metrics) {
        Backend backend = model.backend();
        int b = batch.records();
        try (Tensor opponentScores = opponent.scores(batch, split);
                SpinBatch.Tensors in = batch.upload(backend);
                Tensor perRow = backend.allocate(DType.F32, 2 * b);
                MistralModel.ForwardState state = model.forward(in.ids(), in.keyMask(), in.targets())) {
            backend.rowSumForward(perRow, state.tokenLogps());
            Tensor policyReal = perRow.view(0, b), policyGenerated = perRow.view(b, b);
            Tensor opponentReal = opponentScores.view(0, b), opponentGenerated = opponentScores.view(b, b);
            backend.spinLossForward(metrics.view(0, SpinLossStats.COUNT), policyReal, policyGenerated, opponentReal,
                    opponentGenerated, beta, lossType);
            // Means over each half's B*T*V logits, from the per-row sums the forward keeps whether it ran fused or not.
            Tensor logitRowSums = state.logitRowSums();
            int rowsPerHalf = Math.toIntExact(logitRowSums.size() / 2);
            double logitsPerHalf = (double) rowsPerHalf * model.config().vocabSize();
            backend.sum(metrics.view(LOGITS_REAL, 1), logitRowSums.view(0, rowsPerHalf), logitsPerHalf);
            backend.sum(metrics.view(LOGITS_GENERATED, 1), logitRowSums.view(rowsPerHalf, rowsPerHalf), logitsPerHalf);
            if (backward) {
                try (Tensor dPerRow = backend.allocate(DType.F32, 2 * b);
                        Tensor dTokenLogps = backend.allocate(DType.F32, 2 * b, batch.length())) {
                    backend.spinLossBackward(dPerRow.view(0, b), dPerRow.view(b, b), policyReal, policyGenerated,
                            opponentReal, opponentGenerated, beta, lossType, (float) share);
                    backend.rowSumBackward(dTokenLogps, dPerRow);
                    model.backward(state, dTokenLogps);
                }
            }
        }
    }
}
