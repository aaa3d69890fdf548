package spin.train;

import java.util.List;
import spin.backend.Tensor;
import spin.data.SpinBatch;
import spin.data.SpinFeatures;

/**
 * What a training step minimises: the SPIN loss ({@link SpinObjective}) or token cross-entropy
 * ({@link SftObjective}). Its metrics stay on the backend: {@link #train} and {@link #evaluate}
 * write them into a F64 tensor and never wait for a device.
 */
interface TrainingObjective {

    /** Names of the metrics {@link #train} and {@link #evaluate} write, in their order, "loss" first. */
    List<String> metricNames();

    /** The loss as a divergence message names it ("the SPIN loss is NaN"). */
    String lossName();

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
     * gradients accumulate into the model's gradient buffer. Writes the micro-batch's metrics
     * (means over it, in {@link #metricNames()} order) into {@code metrics}, F64
     * [{@code metricNames().size()}] on the model's backend. A non-finite loss is written like any
     * other: the step finds it when it reads its checks. The backward runs at share 0 too (adding
     * zero gradients): a ZeRO-3 rank's filler micro-batch still takes part in the group's gathers.
     */
    void train(SpinBatch batch, double share, Tensor metrics);

    /** The same metrics without a backward pass, on an evaluation batch. */
    void evaluate(SpinBatch batch, Tensor metrics);
}
