package spin.train;

import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.StepGradient;
import spin.backend.Tensor;
import spin.data.SpinBatch;
import spin.dist.Communicator;
import spin.model.MistralModel;
import spin.model.ParameterBuffer;
import spin.optim.Optimizer;

/**
 * One optimizer step of HF Trainer: forward and backward over the step's micro-batches (each
 * weighted by its share of the step, so accumulation equals one large batch), the global gradient
 * norm, clipping as torch's clip_grad_norm_ does, the update, and zeroed gradients.
 *
 * <p>Nothing in it waits for a device but one read at the end: three doubles the step left on the
 * backend, its loss (the micro-batches' losses weighted by their shares), the pre-clip gradient
 * norm and the sum of the updated weights. A non-finite one stops training with a
 * {@link TrainingDivergedException} naming the step, checked in that order: a NaN loss also makes
 * the gradients and the weights NaN, and the message names the first cause. The metrics go to
 * the caller's {@link MetricMeans}, on the backend, unread.
 */
final class TrainingStep {
    /** Elements of the step's check tensor: the first two are summed over a ZeRO-3 group. */
    private static final int LOSS = 0, WEIGHT_SUM = 1, NORM = 2, SQUARES = 3, CHECKS = 4;

    private final MistralModel model;
    private final Optimizer optimizer;
    private final TrainingObjective objective;
    private final double maxGradNorm;
    /** The ZeRO-3 group of a sharded model, else null. */
    private final Communicator group;

    /** The pre-clip gradient norm of a step. */
    record Outcome(double gradNorm) {}

    /**
     * One micro-batch of a step on this rank, weighted by {@code share} of the whole step (its
     * weight over the weights of every micro-batch of the step, on every rank). A filler is run
     * with share 0 and counted nowhere: it keeps a rank that has no micro-batch left in the
     * epoch's last step taking part in its group's collectives.
     */
    record MicroBatch(SpinBatch batch, double weight, double share, boolean filler) {}

    TrainingStep(MistralModel model, Optimizer optimizer, TrainingObjective objective, double maxGradNorm) {
        this.model = model;
        this.optimizer = optimizer;
        this.objective = objective;
        this.maxGradNorm = maxGradNorm;
        this.group = model.isSharded() ? model.zeroShards().communicator() : null;
    }

    /** The micro-batches of a step on one device: each weighted by its share of them all. */
    static List<MicroBatch> shares(TrainingObjective objective, List<SpinBatch> batches) {
        double[] weights = new double[batches.size()];
        double total = 0;
        for (int i = 0; i < batches.size(); i++) {
            weights[i] = objective.weight(batches.get(i));
            total += weights[i];
        }
        List<MicroBatch> out = new ArrayList<>();
        for (int i = 0; i < batches.size(); i++) {
            out.add(new MicroBatch(batches.get(i), weights[i], weights[i] / total, false));
        }
        return out;
    }

    /**
     * Runs step {@code stepNumber} (1-based, for messages) at learning rate {@code lr} over this
     * rank's micro-batches, adding each one's metrics to {@code metrics} with its weight. Waits for
     * the device once. On a ZeRO-3 rank the gradient norm is the group's (an all-reduce of shard
     * sums of squares) and the loss and weight checks are summed over the group, so every rank
     * gets the same outcome, or the same exception.
     */
    Outcome run(List<MicroBatch> micro, float lr, long stepNumber, MetricMeans metrics) {
        Backend backend = model.backend();
        double[] checks;
        try (Tensor values = backend.allocate(DType.F64, objective.metricNames().size());
                Tensor step = backend.allocate(DType.F64, CHECKS);
                Tensor clipFactor = backend.allocate(DType.F32, 1)) {
            for (MicroBatch m : micro) {
                // The stream orders each micro-batch's writes to values after the previous one's adds.
                objective.train(m.batch(), m.share(), values);
                if (!m.filler()) {
                    metrics.add(values, m.weight());
                    backend.accumulateWeighted(step.view(LOSS, 1), values.view(0, 1), m.share());
                }
            }
            // clip_grad_norm_ with its factor applied in the optimizer's pass: the sum of squares (the
            // group's, on a ZeRO-3 rank) gives the norm and the factor, and the step reads each
            // gradient once, scales it and zeroes it (its last use; the padding past the slots, which
            // no step touches, stays zero because the backward writes slot views only and a ZeRO-3
            // unit's gradient buffer is zero-filled, padding included, when it is lent), the same
            // bits as clipping in place, the step and a fill, in one pass over the gradient instead
            // of three.
            Tensor grads = model.masterGradients().flat();
            backend.sumOfSquares(step.view(SQUARES, 1), grads);
            if (group != null) {
                group.allReduce(step.view(SQUARES, 1));
            }
            backend.clipFactor(step.view(NORM, 1), clipFactor, step.view(SQUARES, 1), maxGradNorm);
            // Asked for before the step: handing the master out marks the compute copy stale, and the
            // step leaves it fresh (written in the step's own pass), which the read below keeps.
            ParameterBuffer master = model.masterWeights();
            optimizer.step(lr, new StepGradient(clipFactor, true));
            // One pass over the weights: a NaN or Inf makes the double sum non-finite (Backend.allFinite).
            backend.sum(step.view(WEIGHT_SUM, 1), master.flat(), 1);
            if (group != null) {
                group.allReduce(step.view(LOSS, 2));
            }
            checks = backend.readDoubles(step);
        }
        if (!Double.isFinite(checks[LOSS])) {
            throw new TrainingDivergedException("step " + stepNumber + ": the " + objective.lossName() + " is " + checks[LOSS]);
        }
        if (!Double.isFinite(checks[NORM])) {
            throw new TrainingDivergedException("step " + stepNumber + ": the gradient norm is " + checks[NORM]);
        }
        if (!Double.isFinite(checks[WEIGHT_SUM])) {
            throw new TrainingDivergedException("step " + stepNumber + ": the optimizer update at learning rate " + lr
                    + " made the weights NaN or Inf; nothing of this step is saved, the last good checkpoint is kept");
        }
        return new Outcome(checks[NORM]);
    }
}
