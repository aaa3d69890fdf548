package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import spin.backend.DType;

/**
 * The plan counts the buffers the model allocates: the logits [N, V] unfused, one chunk of rows
 * fused; activations in the compute dtype beside fp32 statistics; a compute copy of the weights
 * only where the compute dtype is not fp32.
 */
class MemoryPlanTest {
    private static MemoryPlan plan(int batch, int logProbChunkRows) {
        return new MemoryPlan(MistralConfig.mistral7b(), batch, 1024, 1, true, 1, logProbChunkRows, DType.F32);
    }

    @Test
    void bf16HalvesActivationsAndAddsABf16CopyOfTheWeights() {
        MistralConfig c = MistralConfig.mistral7b();
        int chunk = MistralModel.defaultLogProbChunkRows(c);
        MemoryPlan fp32 = new MemoryPlan(c, 2, 1024, 1, false, 1, chunk, DType.F32);
        MemoryPlan bf16 = new MemoryPlan(c, 2, 1024, 1, false, 1, chunk, DType.BF16);
        long params = fp32.parameterCount(), rows = 2048;
        assertEquals(0, fp32.computeWeightBytes(), "fp32 products use the master weights");
        assertEquals(2 * params, bf16.computeWeightBytes());
        assertEquals(fp32.trainingStateBytes(), bf16.trainingStateBytes(), "master, gradients and optimizer state stay fp32");
        assertEquals(fp32.residualBytes() / 2, bf16.residualBytes());
        long statistics = rows * (2 + c.numAttentionHeads()) * 4;
        assertEquals((fp32.layerActivationBytes() - statistics) / 2 + statistics, bf16.layerActivationBytes(),
                "rstd and lse stay fp32");
        assertEquals((long) chunk * c.vocabSize() * (4 + 2), bf16.logitsBytes(), "fp32 logits and their bf16 gradient");
        assertEquals(bf16.computeWeightBytes() + bf16.trainingStateBytes() + bf16.activationBytesPerGpu(),
                bf16.totalBytesPerGpu(), "one GPU gathers nothing");
        assertTrue(bf16.report().contains("bf16 copy"), bf16.report());
    }

    @Test
    void fusionCountsOneChunkOfLogitsInsteadOfAll() {
        int vocab = MistralConfig.mistral7b().vocabSize();
        int chunk = MistralModel.defaultLogProbChunkRows(MistralConfig.mistral7b());
        assertEquals(262, chunk, "2^23 logits of a 32,000-token vocabulary");
        MemoryPlan unfused = plan(2, 0), fused = plan(2, chunk);
        assertEquals(2048L * vocab * 4, unfused.logitsBytes());
        assertEquals((long) chunk * vocab * 4, fused.logitsBytes());
        assertEquals(unfused.logitsBytes() - fused.logitsBytes(), unfused.activationBytesPerGpu() - fused.activationBytesPerGpu(),
                "only the logits buffer changes");
        assertEquals(fused.logitsBytes(), plan(8, chunk).logitsBytes(), "the chunk does not grow with the batch");
        assertEquals(100L * vocab * 4, new MemoryPlan(MistralConfig.mistral7b(), 1, 100, 1, true, 1, chunk, DType.F32).logitsBytes(),
                "a chunk larger than the batch holds the batch's rows");
        assertTrue(fused.report().contains("fused, in chunks of 262 rows"), fused.report());
        assertTrue(unfused.report().contains("unfused"), unfused.report());
    }
}
