package spin.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import spin.model.MistralConfig;
import spin.model.ParameterLayout;

class TrainingFlopsTest {

    /**
     * Mistral-7B-v0.1 has 7,241,732,096 parameters (its model card); less the embedding (32000 x
     * 4096) and the 65 norm vectors of 4096, 7,110,393,856 weights multiply every token. T 2048 is
     * inside the 4096 window, so attention is causal: 4·B·H·D·T²/2 forward, 3.5x that for both passes.
     */
    @Test
    void mistral7bStepIsSixFlopsPerMatrixWeightAndTokenPlusCausalAttention() {
        MistralConfig c = MistralConfig.mistral7b();
        double tokens = 2.0 * 2048;
        double attention = 3.5 * 32 * 4.0 * 2 * 32 * 128 * (2048.0 * 2048 / 2);
        assertEquals(6 * 7_110_393_856.0 * tokens + attention, TrainingFlops.perStep(c, 2, 2048), 1.0);
    }

    /** The matrices counted are the layout's own matrix slots (the head shared with a tied embedding counted once). */
    @Test
    void theWeightsCountedAreTheLayoutsMatricesOtherThanTheEmbeddingLookup() {
        for (MistralConfig c : new MistralConfig[] {MistralConfig.preset("tiny"), MistralConfig.preset("small")}) {
            long matrices = new ParameterLayout(c).slots().stream()
                    .filter(s -> s.shape().length == 2 && !s.name().equals(ParameterLayout.Names.EMBED))
                    .mapToLong(ParameterLayout.Slot::size).sum();
            if (c.tieWordEmbeddings()) {
                matrices += (long) c.vocabSize() * c.hiddenSize();
            }
            int t = 3 * c.slidingWindow() / 2 + 1;
            double attention = 3.5 * c.numHiddenLayers()
                    * KernelCases.attentionFlops(1, t, c.numAttentionHeads(), c.headDim(), c.slidingWindow());
            assertEquals(6.0 * matrices * t + attention, TrainingFlops.perStep(c, 1, t), 1e-6 * attention);
        }
    }
}
