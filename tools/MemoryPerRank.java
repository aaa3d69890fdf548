// Prints MemoryPlan's Mistral-7B plan per rank at 1, 2, 4 and 8 GPUs as the Markdown table of
// docs/ARCHITECTURE.md ("Memory per rank"): bf16 compute, AdamW, a micro-batch of 2 x 1024 tokens,
// gradient checkpointing on, the default fused log-prob chunk.
// Run after a build: java -cp target/spin.jar tools/MemoryPerRank.java
import spin.backend.DType;
import spin.model.MemoryPlan;
import spin.model.MistralConfig;
import spin.model.MistralModel;

public class MemoryPerRank {
    public static void main(String[] args) {
        MistralConfig c = MistralConfig.mistral7b();
        int chunk = MistralModel.defaultLogProbChunkRows(c);
        System.out.println("| GPUs | layout | fp32 master + grad + AdamW | bf16 weights | unit gradients | activations | pool peak | + cuBLASLt = per GPU |");
        System.out.println("| --: | --- | --: | --: | --: | --: | --: | --: |");
        // One GPU twice: the resident model (spin train on one device) and a ZeRO-3 rank of one.
        int[][] runs = {{1, 0}, {1, 1}, {2, 1}, {4, 1}, {8, 1}};
        for (int[] run : runs) {
            int gpus = run[0];
            boolean zero = run[1] == 1;
            MemoryPlan p = new MemoryPlan(c, 2, 1024, gpus, true, 2, chunk, DType.BF16, zero);
            System.out.printf("| %d | %s | %s | %s | %s | %s | %s | %s |%n", gpus, zero ? "ZeRO-3 rank" : "resident",
                    MemoryPlan.human(p.trainingStateBytes()),
                    zero ? MemoryPlan.human(p.gatherBufferBytes()) + " (3 gather buffers)" : MemoryPlan.human(p.computeWeightBytes()) + " (copy)",
                    MemoryPlan.human(p.unitGradientBytes()), MemoryPlan.human(p.activationBytesPerGpu()),
                    MemoryPlan.human(p.poolBytesPerGpu()), MemoryPlan.human(p.totalBytesPerGpu()));
        }
    }
}
