package spin.optim;

import spin.model.ParameterLayout;
import spin.model.ParameterLayout.Slot;

/** HF decays weight matrices only: biases and norm weights (every 1-D parameter of Mistral) are spared. */
final class WeightDecay {
    private WeightDecay() {}

    static float of(Slot slot, float weightDecay) {
        // By name, not by the slot's shape: a ZeRO-3 shard holds 1-D pieces of the matrices.
        return ParameterLayout.isMatrix(slot.name()) ? weightDecay : 0f;
    }
}
