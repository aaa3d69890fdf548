package spin.train;

import spin.data.LogProbScorer;
import spin.data.SpinBatch;
import spin.model.MistralModel;

/** The opponent as a second, frozen model scored batch by batch ({@code precompute_opponent: false}). */
final class FrozenOpponent implements Opponent {
    private final MistralModel model;

    FrozenOpponent(MistralModel model) {
        this.model = model;
    }

    @Override
    public LogProbScorer.Scores scores(SpinBatch batch, Split split) {
        return LogProbScorer.score(model, batch);
    }

    @Override
    public void close() {
        model.close();
    }
}
