package spin.train;

import spin.data.LogProbScorer;
import spin.data.SpinBatch;

/** The frozen opponent's log-probs of a batch's real and generated answers. */
interface Opponent extends AutoCloseable {

    LogProbScorer.Scores scores(SpinBatch batch, Split split);

    @Override
    default void close() {}

    /** Which dataset a batch's record indices point into. */
    enum Split { TRAIN, TEST }
}
