package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import spin.backend.DType;
import spin.nativebind.CublasLt;

/**
 * The plan counts the buffers the model allocates: the logits [N, V] unfused, one chunk of rows
 * fused; activations in the compute dtype beside fp32 statistics; a compute copy of the weights
 * only on one device where the compute dtype is not fp32; a ZeRO-3 rank's padded shards and
 * gather buffers. (EmulatedMemoryPlanTest holds the whole against a measured pool peak.)
 */
class MemoryPlanTest {
    /** Mistral-7B's units: the embedding, each of the 32 layers, the final norm with the lm_head. */
    private static final long EMBEDDING = 32000L * 4096, LAYER = 2 * 4096 + 4096L * (2 * 4096 + 2 * 1024) + 3 * 4096L * 14336,
            HEAD = 4096 + 32000L * 4096;

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
        assertEquals(EMBEDDING + 32 * LAYER + HEAD, params);
        long wholeRows = (params + 4095) / 4096 * 4096;
        assertEquals(0, fp32.computeWeightBytes(), "fp32 products use the master weights");
        assertEquals(2 * wholeRows, bf16.computeWeightBytes(), "the bf16 copy, in whole rows of 4096 as every parameter buffer");
        assertEquals(4 * wholeRows * (2 + 1), fp32.trainingStateBytes(), "master, gradients, RMSprop's one state");
        assertEquals(fp32.trainingStateBytes(), bf16.trainingStateBytes(), "master, gradients and optimizer state stay fp32");
        assertEquals(fp32.residualBytes() / 2, bf16.residualBytes());
        long statistics = rows * (2 + c.numAttentionHeads()) * 4;
        assertEquals((fp32.layerActivationBytes() - statistics) / 2 + statistics, bf16.layerActivationBytes(),
                "rstd and lse stay fp32");
        assertEquals((long) chunk * c.vocabSize() * (4 + 2), bf16.logitsBytes(), "fp32 logits and their bf16 gradient");
        assertEquals(0, bf16.gatherBufferBytes() + bf16.unitGradientBytes(), "one resident GPU gathers nothing");
        assertEquals(bf16.computeWeightBytes() + bf16.trainingStateBytes() + bf16.activationBytesPerGpu(), bf16.poolBytesPerGpu());
        assertEquals(bf16.poolBytesPerGpu() + CublasLt.WORKSPACE_BYTES, bf16.totalBytesPerGpu(), "cuBLASLt's workspace is outside the pool");
        assertTrue(bf16.report().contains("bf16 copy"), bf16.report());
        assertTrue(bf16.report().contains("resident on one GPU"), bf16.report());
    }

    @Test
    void fusionCountsOneChunkOfLogitsInsteadOfAll() {
        int vocab = MistralConfig.mistral7b().vocabSize();
        int chunk = MistralModel.defaultLogProbChunkRows(MistralConfig.mistral7b());
        assertEquals(262, chunk, "2^23 logits of a 32,000-token vocabulary");
        MemoryPlan unfused = plan(2, 0), fused = plan(2, chunk);
        assertEquals(2048L * vocab * 4, unfused.logitsBytes());
        assertEquals((long) chunk * vocab * 4, fused.logitsBytes());
        assertEquals((Workspace.reservedElements(2048L * vocab) - Workspace.reservedElements((long) chunk * vocab)) * 4,
                unfused.activationBytesPerGpu() - fused.activationBytesPerGpu(), "only the logits buffer changes, with its spare");
        assertEquals(fused.logitsBytes(), plan(8, chunk).logitsBytes(), "the chunk does not grow with the batch");
        assertEquals(100L * vocab * 4, new MemoryPlan(MistralConfig.mistral7b(), 1, 100, 1, true, 1, chunk, DType.F32).logitsBytes(),
                "a chunk larger than the batch holds the batch's rows");
        assertTrue(fused.report().contains("fused, in chunks of 262 rows"), fused.report());
        assertTrue(unfused.report().contains("unfused"), unfused.report());
    }

    /**
     * A ZeRO-3 rank holds fp32 shards of every unit padded to a multiple of the world size (at 3
     * ranks only the embedding needs padding), no compute copy, three gather buffers and one
     * unit-gradient buffer of the largest unit (a layer); its activations are the resident model's.
     */
    @Test
    void aZeroRankHoldsPaddedShardsAndGatherBuffers() {
        MistralConfig c = MistralConfig.mistral7b();
        MemoryPlan resident = new MemoryPlan(c, 2, 1024, 1, true, 2, 262, DType.BF16);
        MemoryPlan rank = new MemoryPlan(c, 2, 1024, 3, true, 2, 262, DType.BF16);
        long shard = (EMBEDDING + 2) / 3 + 32 * (LAYER / 3) + HEAD / 3;
        assertEquals(0, LAYER % 3);
        assertEquals(0, HEAD % 3);
        assertEquals(shard, rank.shards().shardTotal());
        long wholeRows = (shard + 4095) / 4096 * 4096;
        assertEquals(wholeRows * 4 * (2 + 2), rank.trainingStateBytes(), "master, gradients and AdamW's two states, sharded");
        assertEquals(0, rank.computeWeightBytes(), "a rank gathers its weights instead");
        assertEquals(3 * LAYER * 2, rank.gatherBufferBytes(), "three bf16 buffers of the largest unit");
        assertEquals(2 * LAYER * 4, rank.unitGradientBytes(),
                "untied: two fp32 unit-gradient buffers, the unit differentiated and the one still reduce-scattering");
        assertEquals(resident.activationBytesPerGpu(), rank.activationBytesPerGpu());
        assertEquals(rank.trainingStateBytes() + rank.gatherBufferBytes() + rank.unitGradientBytes() + rank.activationBytesPerGpu(),
                rank.poolBytesPerGpu());
        assertTrue(rank.report().contains("ZeRO-3, one rank of 3"), rank.report());

        MistralConfig tied = new MistralConfig(512, 64, 192, 2, 4, 2, 16, 2048, 1e-5f, 10000f, 128, true, 0.02f, 1, 2);
        MemoryPlan tiedRank = new MemoryPlan(tied, 2, 16, 1, true, 1, 0, DType.F32, true);
        long largest = 2 * 64 + 64L * (2 * 64 + 2 * 32) + 3 * 64L * 192;
        assertTrue(largest > 512L * 64, "a layer is the largest unit");
        assertEquals(3 * largest * 4, tiedRank.unitGradientBytes(), "tied: the embedding's beside those two");
        assertEquals(3 * largest * 4, tiedRank.gatherBufferBytes(), "fp32 gathers copy the master shard's values");

        assertThrows(IllegalArgumentException.class, () -> new MemoryPlan(c, 2, 1024, 2, true, 1, 262, DType.BF16, false),
                "a resident model lives on one GPU");
    }
}
