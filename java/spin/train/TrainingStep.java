package spin.train;

import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.data.SpinBatch;
import spin.model.MistralModel;
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
    /** Elements of the step's check tensor. */
    private static final int LOSS = 0, NORM = 1, WEIGHT_SUM = 2, CHECKS = 3;

    private final MistralModel model;
    private final Optimizer optimizer;
    private final TrainingObjective objective;
    private final double maxGradNorm;

    /** The pre-clip gradient norm of a step and the tokens its forward passes read. */
    record Outcome(double gradNorm, long tokens) {}

    TrainingStep(MistralModel model, Optimizer optimizer, TrainingObjective objective, double maxGradNorm) {
        this.model = model;
        this.optimizer = optimizer;
        this.objective = objective;
        this.maxGradNorm = maxGradNorm;
    }

    /**
     * Runs step {@code stepNumber} (1-based, for messages) at learning rate {@code lr}, adding each
     * micro-batch's metrics to {@code metrics} with its weight. Waits for the device once.
     */
    Outcome run(List<SpinBatch> batches, float lr, long stepNumber, MetricMeans metrics) {
        double total = 0;
        double[] weights = new double[batches.size()];
        for (int i = 0; i < batches.size(); i++) {
            weights[i] = objective.weight(batches.get(i));
            total += weights[i];
        }
        Backend backend = model.backend();
        long tokens = 0;
        double[] checks;
        try (Tensor values = backend.allocate(DType.F64, objective.metricNames().size());
                Tensor step = backend.allocate(DType.F64, CHECKS)) {
            for (int i = 0; i < batches.size(); i++) {
                double share = weights[i] / total;
                // The stream orders each micro-batch's writes to values after the previous one's adds.
                objective.train(batches.get(i), share, values);
                metrics.add(values, weights[i]);
                backend.accumulateWeighted(step.view(LOSS, 1), values.view(0, 1), share);
                tokens += batches.get(i).attendedTokens();
            }
            backend.clipGradNorm(step.view(NORM, 1), model.gradients().flat(), maxGradNorm);
            optimizer.step(lr);
            // One pass over the weights: a NaN or Inf makes the double sum non-finite (Backend.allFinite).
            backend.sum(step.view(WEIGHT_SUM, 1), model.parameters().flat(), 1);
            backend.fill(model.gradients().flat(), 0f);
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
        return new Outcome(checks[NORM], tokens);
    }
}
