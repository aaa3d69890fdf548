package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The plan counts the logits buffer the model allocates: [N, V] unfused, one chunk of rows fused. */
class MemoryPlanTest {
    private static MemoryPlan plan(int batch, int logProbChunkRows) {
        return new MemoryPlan(MistralConfig.mistral7b(), batch, 1024, 1, true, 1, logProbChunkRows);
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
        assertEquals(100L * vocab * 4, new MemoryPlan(MistralConfig.mistral7b(), 1, 100, 1, true, 1, chunk).logitsBytes(),
                "a chunk larger than the batch holds the batch's rows");
        assertTrue(fused.report().contains("fused, in chunks of 262 rows"), fused.report());
        assertTrue(unfused.report().contains("unfused"), unfused.report());
    }
}
