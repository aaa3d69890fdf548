package spin.optim;

import spin.model.ParameterLayout.Slot;

/** HF decays weight matrices only: biases and norm weights (every 1-D parameter of Mistral) are spared. */
final class WeightDecay {
    private WeightDecay() {}

    static float of(Slot slot, float weightDecay) {
        return slot.shape().length >= 2 ? weightDecay : 0f;
    }
}
