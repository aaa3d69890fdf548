package spin.data;

import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.model.MistralModel;

/**
 * Per-record sums of response-token log-probs under a model, for the real and the generated answer:
 * logp(y|x) = sum over response positions of log p(token | everything before it). These are the
 * opponent's numbers in the SPIN loss, which stay fixed during an iteration.
 */
public final class LogProbScorer {
    private LogProbScorer() {}

    /** Element b of each array belongs to record b of the batch. */
    public record Scores(float[] real, float[] generated) {}

    public static Scores score(MistralModel model, SpinBatch batch) {
        Backend backend = model.backend();
        int b = batch.records();
        float[] sums;
        try (SpinBatch.Tensors inputs = batch.upload(backend);
                MistralModel.ForwardState state = model.forward(inputs.ids(), inputs.keyMask(), inputs.targets());
                Tensor perRow = backend.allocate(DType.F32, batch.rows())) {
            backend.rowSumForward(perRow, state.tokenLogps());
            sums = backend.read(perRow);
        }
        float[] real = new float[b], generated = new float[b];
        System.arraycopy(sums, 0, real, 0, b);
        System.arraycopy(sums, b, generated, 0, b);
        return new Scores(real, generated);
    }
}
