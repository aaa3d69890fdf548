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

    /**
     * The sums as a new F32 [2B] tensor on the model's backend, real rows first, then generated
     * (the batch's row order), queued without waiting for the device; the caller closes it.
     */
    public static Tensor rowSums(MistralModel model, SpinBatch batch) {
        Backend backend = model.backend();
        Tensor perRow = backend.allocate(DType.F32, batch.rows());
        try (SpinBatch.Tensors inputs = batch.upload(backend);
                MistralModel.ForwardState state = model.forward(inputs.ids(), inputs.keyMask(), inputs.targets())) {
            backend.rowSumForward(perRow, state.tokenLogps());
            return perRow;
        } catch (RuntimeException e) {
            perRow.close();
            throw e;
        }
    }

    /** The sums on the host. */
    public static Scores score(MistralModel model, SpinBatch batch) {
        int b = batch.records();
        float[] sums;
        try (Tensor perRow = rowSums(model, batch)) {
            sums = model.backend().read(perRow);
        }
        float[] real = new float[b], generated = new float[b];
        System.arraycopy(sums, 0, real, 0, b);
        System.arraycopy(sums, b, generated, 0, b);
        return new Scores(real, generated);
    }
}
