package spin.model;

/**
 * Bytes a training run needs, from the config, the micro-batch and the sequence length, for this
 * engine's layout: bf16 weights for compute, fp32 master weights, fp32 gradients and the
 * optimizer's fp32 state, all sharded over the GPUs as ZeRO-3 does, plus fp32 activations per GPU.
 *
 * @param optimizerStates fp32 buffers per parameter the optimizer keeps (RMSprop 1, AdamW 2)
 * @param logProbChunkRows the model's {@link MistralModel#logProbChunkRows()}: 0 plans the whole
 *     [N, V] logits, else one chunk of that many rows
 */
public record MemoryPlan(MistralConfig config, int batch, int sequenceLength, int gpus, boolean activationRecompute,
        int optimizerStates, int logProbChunkRows) {

    public MemoryPlan {
        if (batch <= 0 || sequenceLength <= 0 || gpus <= 0 || optimizerStates < 0 || logProbChunkRows < 0) {
            throw new IllegalArgumentException("batch, sequence length and GPUs must be positive, optimizer states and "
                    + "log-prob chunk rows not negative");
        }
    }

    public long parameterCount() {
        return new ParameterLayout(config).totalSize();
    }

    public long bf16WeightBytes() {
        return parameterCount() * 2;
    }

    /** fp32 master weights, gradients and optimizer state, before sharding. */
    public long trainingStateBytes() {
        return parameterCount() * 4L * (2 + optimizerStates);
    }

    /** Per GPU: its shard of everything parameter-sized. */
    public long shardedStateBytesPerGpu() {
        return (bf16WeightBytes() + trainingStateBytes() + gpus - 1) / gpus;
    }

    private long rows() {
        return (long) batch * sequenceLength;
    }

    /** fp32 activations one layer saves for its backward. */
    public long layerActivationBytes() {
        MistralConfig c = config;
        long perRow = 3L * c.hiddenSize() + 2 + 2L * c.queryDim() + 2L * c.keyValueDim() + c.numAttentionHeads()
                + 3L * c.intermediateSize();
        return rows() * perRow * 4;
    }

    /** The residual stream kept at every layer boundary (all that survives with recompute). */
    public long residualBytes() {
        return rows() * (config.numHiddenLayers() + 1L) * config.hiddenSize() * 4;
    }

    /** The fp32 logits buffer: [N, V] unfused, one chunk of rows fused. */
    public long logitsBytes() {
        return MistralModel.logitBufferRows(logProbChunkRows, rows()) * config.vocabSize() * 4;
    }

    /** Peak fp32 activations per GPU for one forward + backward of the micro-batch. */
    public long activationBytesPerGpu() {
        long layers = activationRecompute ? 1 : config.numHiddenLayers();
        long backwardScratch = rows() * (3L * config.hiddenSize() + 2L * config.queryDim() + 2L * config.keyValueDim()
                + 3L * config.intermediateSize()) * 4;
        return residualBytes() + layers * layerActivationBytes() + logitsBytes() + backwardScratch;
    }

    /** The parameters of the largest layer, all-gathered in bf16 while it runs (ZeRO-3). */
    public long gatheredLayerBytes() {
        MistralConfig c = config;
        long layer = 2L * c.hiddenSize() + (long) c.hiddenSize() * (2L * c.queryDim() + 2L * c.keyValueDim())
                + 3L * c.hiddenSize() * c.intermediateSize();
        long vocab = (long) c.vocabSize() * c.hiddenSize();
        return Math.max(layer, vocab) * 2;
    }

    public long totalBytesPerGpu() {
        return shardedStateBytesPerGpu() + activationBytesPerGpu() + gatheredLayerBytes();
    }

    public String report() {
        StringBuilder b = new StringBuilder();
        b.append(String.format("Parameters:            %,d%n", parameterCount()));
        b.append(String.format("Micro-batch:           %d x %d tokens, %d GPU(s), activation recompute %s, %d optimizer state(s)%n",
                batch, sequenceLength, gpus, activationRecompute ? "on" : "off", optimizerStates));
        b.append(String.format("lm_head + log-prob:    %s%n", logProbChunkRows == 0 ? "unfused (the whole [N, V] logits at once)"
                : "fused, in chunks of " + logProbChunkRows + " rows"));
        b.append(String.format("bf16 weights:          %s%n", human(bf16WeightBytes())));
        b.append(String.format("fp32 master+grad+opt:  %s (all GPUs together)%n", human(trainingStateBytes())));
        b.append(String.format("per GPU, sharded:      %s%n", human(shardedStateBytesPerGpu())));
        b.append(String.format("per GPU, activations:  %s (one layer %s, residual stream %s, logits %s)%n",
                human(activationBytesPerGpu()), human(layerActivationBytes()), human(residualBytes()), human(logitsBytes())));
        b.append(String.format("per GPU, gathered:     %s (largest layer or vocabulary matrix in bf16)%n", human(gatheredLayerBytes())));
        b.append(String.format("per GPU, total:        %s%n", human(totalBytesPerGpu())));
        return b.toString();
    }

    public static String human(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format("%.2f %s", v, units[u]);
    }
}
