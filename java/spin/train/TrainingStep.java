package spin.train;

import java.util.List;
import java.util.Map;
import spin.backend.Backend;
import spin.data.SpinBatch;
import spin.model.MistralModel;
import spin.optim.Optimizer;

/**
 * One optimizer step of HF Trainer: forward and backward over the step's micro-batches (each
 * weighted by its share of the step, so accumulation equals one large batch), the global gradient
 * norm, clipping as torch's clip_grad_norm_ does, the update, a check that the updated weights are
 * finite (one reduction over the parameter buffer), and zeroed gradients.
 */
final class TrainingStep {
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
     * micro-batch's metrics to {@code metrics} with its weight.
     */
    Outcome run(List<SpinBatch> batches, float lr, long stepNumber, MetricMeans metrics) {
        double total = 0;
        double[] weights = new double[batches.size()];
        for (int i = 0; i < batches.size(); i++) {
            weights[i] = objective.weight(batches.get(i));
            total += weights[i];
        }
        long tokens = 0;
        for (int i = 0; i < batches.size(); i++) {
            Map<String, Double> values = objective.train(batches.get(i), weights[i] / total, stepNumber);
            metrics.add(values, weights[i]);
            tokens += batches.get(i).attendedTokens();
        }
        Backend backend = model.backend();
        double norm = backend.clipGradNorm(model.gradients().flat(), maxGradNorm);
        if (!Double.isFinite(norm)) {
            throw new TrainingDivergedException("step " + stepNumber + ": the gradient norm is " + norm);
        }
        optimizer.step(lr);
        if (!backend.allFinite(model.parameters().flat())) {
            throw new TrainingDivergedException("step " + stepNumber + ": the optimizer update at learning rate " + lr
                    + " made the weights NaN or Inf; nothing of this step is saved, the last good checkpoint is kept");
        }
        backend.fill(model.gradients().flat(), 0f);
        return new Outcome(norm, tokens);
    }
}
