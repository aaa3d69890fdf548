package spin.train;

import spin.backend.Tensor;
import spin.data.SpinBatch;

/** The frozen opponent's log-probs of a batch's real and generated answers. */
interface Opponent extends AutoCloseable {

    /**
     * The opponent's summed log-probs of the batch's real answers, then its generated ones: a new
     * F32 [2B] tensor (the layout of the policy's per-row sums) on the backend the policy trains
     * on, queued without waiting for the device; the caller closes it.
     */
    Tensor scores(SpinBatch batch, Split split);

    @Override
    default void close() {}

    /** Which dataset a batch's record indices point into. */
    enum Split { TRAIN, TEST }
}
