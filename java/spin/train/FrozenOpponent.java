package spin.train;

import spin.backend.Tensor;
import spin.data.LogProbScorer;
import spin.data.SpinBatch;
import spin.model.MistralModel;

/**
 * The opponent as a second, frozen model scored batch by batch ({@code precompute_opponent: false}),
 * on the policy's backend; its scores stay there.
 */
final class FrozenOpponent implements Opponent {
    private final MistralModel model;

    FrozenOpponent(MistralModel model) {
        this.model = model;
    }

    @Override
    public Tensor scores(SpinBatch batch, Split split) {
        return LogProbScorer.rowSums(model, batch);
    }

    @Override
    public void close() {
        model.close();
    }
}
