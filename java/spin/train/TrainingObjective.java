package spin.train;

import java.util.List;
import java.util.Map;
import spin.data.SpinBatch;
import spin.data.SpinFeatures;

/** What a training step minimises: the SPIN loss ({@link SpinObjective}) or token cross-entropy ({@link SftObjective}). */
interface TrainingObjective {

    /** Batches the records of one micro-batch. */
    SpinBatch collate(List<SpinFeatures> records);

    /**
     * The micro-batch's share of a step's loss before normalisation: records for SPIN (the loss is a
     * mean over pairs), scored tokens for SFT (a mean over tokens), so that accumulated micro-batches
     * weigh exactly as one large batch would.
     */
    double weight(SpinBatch batch);

    /**
     * Forward and backward of one micro-batch whose loss enters the step with factor {@code share};
     * gradients accumulate into the model's gradient buffer. Returns the micro-batch's metrics
     * (means over it, "loss" first), or throws {@link TrainingDivergedException} on a non-finite loss.
     */
    Map<String, Double> train(SpinBatch batch, double share, long step);

    /** The same metrics without a backward pass, on an evaluation batch. */
    Map<String, Double> evaluate(SpinBatch batch);
}
