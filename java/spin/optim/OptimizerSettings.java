package spin.optim;

import spin.model.MistralModel;

/**
 * The optimizer keys of HF TrainingArguments with their defaults: RMSprop takes torch's alpha 0.99
 * and eps 1e-8 (HF passes only the learning rate); AdamW takes adam_beta1/adam_beta2/adam_epsilon.
 * Weight decay follows HF's rule of sparing biases and norm weights: here, every 1-D parameter.
 * Values torch would refuse are refused here, by their HF key, whichever optimizer is chosen.
 */
public record OptimizerSettings(String name, float weightDecay, float beta1, float beta2, float epsilon) {

    public static final float RMSPROP_ALPHA = 0.99f;
    public static final float RMSPROP_EPS = 1e-8f;

    public OptimizerSettings {
        if (!name.equals("rmsprop") && !name.equals("adamw")) {
            throw new IllegalArgumentException("optim must be rmsprop or adamw (adamw_torch also names adamw), got \"" + name + "\"");
        }
        // torch.optim refuses these when the optimizer is built (AdamW: 0 <= beta < 1, eps >= 0, weight_decay >= 0)
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("weight_decay must be >= 0, got " + weightDecay);
        }
        betaInUnitInterval("adam_beta1", beta1);
        betaInUnitInterval("adam_beta2", beta2);
        if (!(epsilon >= 0)) {
            throw new IllegalArgumentException("adam_epsilon must be >= 0, got " + epsilon);
        }
    }

    private static void betaInUnitInterval(String key, float beta) {
        if (!(beta >= 0 && beta < 1)) {
            throw new IllegalArgumentException(key + " must be in [0, 1), got " + beta);
        }
    }

    /** fp32 tensors of the parameters' size the optimizer keeps: RMSprop's square average, AdamW's two moments. */
    public int stateTensors() {
        return name.equals("rmsprop") ? 1 : 2;
    }

    public Optimizer create(MistralModel model) {
        return name.equals("rmsprop")
                ? new RmsProp(model, RMSPROP_ALPHA, RMSPROP_EPS, weightDecay)
                : new AdamW(model, beta1, beta2, epsilon, weightDecay);
    }
}
