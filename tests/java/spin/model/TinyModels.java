package spin.model;

import spin.backend.Backend;

/** Small random models for model-level tests. */
public final class TinyModels {
    private TinyModels() {}

    /** GQA (4 query heads over 2 kv heads) and a sliding window of 6, shorter than the test sequences. */
    public static MistralConfig config() {
        return new MistralConfig(97, 32, 48, 2, 4, 2, 8, 256, 1e-5f, 10000f, 6, false, 0.2f, 1, 2);
    }

    public static MistralModel random(Backend backend, long seed) {
        MistralModel model = new MistralModel(config(), backend);
        ModelCheckpoint.initialize(model, seed);
        return model;
    }
}
