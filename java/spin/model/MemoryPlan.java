package spin.model;

import spin.backend.DType;

/**
 * Bytes a training run needs, from the config, the micro-batch and the sequence length, for this
 * engine's layout ({@link MistralModel}): fp32 master weights, their copy in the compute dtype
 * (none in fp32), fp32 gradients and the optimizer's fp32 state, all sharded over the GPUs as
 * ZeRO-3 does, plus activations in the compute dtype (statistics and logits in fp32) per GPU.
 *
 * @param optimizerStates fp32 buffers per parameter the optimizer keeps (RMSprop 1, AdamW 2)
 * @param logProbChunkRows the model's {@link MistralModel#logProbChunkRows()}: 0 plans the whole
 *     [N, V] logits, else one chunk of that many rows
 * @param computeType the backend's {@link spin.backend.Backend#computeType()}: F32 or BF16
 */
public record MemoryPlan(MistralConfig config, int batch, int sequenceLength, int gpus, boolean activationRecompute,
        int optimizerStates, int logProbChunkRows, DType computeType) {

    public MemoryPlan {
        if (batch <= 0 || sequenceLength <= 0 || gpus <= 0 || optimizerStates < 0 || logProbChunkRows < 0) {
            throw new IllegalArgumentException("batch, sequence length and GPUs must be positive, optimizer states and "
                    + "log-prob chunk rows not negative");
        }
        if (computeType != DType.F32 && computeType != DType.BF16) {
            throw new IllegalArgumentException("the compute dtype is F32 or BF16, not " + computeType);
        }
    }

    /** Bytes of one activation element. */
    private long act() {
        return computeType.byteSize();
    }

    public long parameterCount() {
        return new ParameterLayout(config).totalSize();
    }

    /** The weights products use: a copy in the compute dtype, or none where that is F32 (the master weights serve). */
    public long computeWeightBytes() {
        return computeType == DType.F32 ? 0 : parameterCount() * act();
    }

    /** fp32 master weights, gradients and optimizer state, before sharding. */
    public long trainingStateBytes() {
        return parameterCount() * 4L * (2 + optimizerStates);
    }

    /** Per GPU: its shard of everything parameter-sized. */
    public long shardedStateBytesPerGpu() {
        return (computeWeightBytes() + trainingStateBytes() + gpus - 1) / gpus;
    }

    private long rows() {
        return (long) batch * sequenceLength;
    }

    /** What one layer saves for its backward: activations in the compute dtype, two rstd and the attention lse in fp32. */
    public long layerActivationBytes() {
        MistralConfig c = config;
        long activations = 3L * c.hiddenSize() + 2L * c.queryDim() + 2L * c.keyValueDim() + 3L * c.intermediateSize();
        long statistics = 2 + c.numAttentionHeads();
        return rows() * (activations * act() + statistics * 4);
    }

    /** The residual stream kept at every layer boundary (all that survives with recompute). */
    public long residualBytes() {
        return rows() * (config.numHiddenLayers() + 1L) * config.hiddenSize() * act();
    }

    /**
     * The fp32 logits buffer, [N, V] unfused or one chunk of rows fused, and where the compute
     * dtype is not F32 the gradient of as many logits in it (the fp32 buffer takes its own in place).
     */
    public long logitsBytes() {
        long logits = MistralModel.logitBufferRows(logProbChunkRows, rows()) * config.vocabSize();
        return logits * 4 + (computeType == DType.F32 ? 0 : logits * act());
    }

    /** Peak activations per GPU for one forward + backward of the micro-batch. */
    public long activationBytesPerGpu() {
        long layers = activationRecompute ? 1 : config.numHiddenLayers();
        long backwardScratch = rows() * (3L * config.hiddenSize() + 2L * config.queryDim() + 2L * config.keyValueDim()
                + 3L * config.intermediateSize()) * act();
        return residualBytes() + layers * layerActivationBytes() + logitsBytes() + backwardScratch;
    }

    /** The parameters of the largest layer, all-gathered in the compute dtype while it runs (ZeRO-3; none on one GPU). */
    public long gatheredLayerBytes() {
        MistralConfig c = config;
        long layer = 2L * c.hiddenSize() + (long) c.hiddenSize() * (2L * c.queryDim() + 2L * c.keyValueDim())
                + 3L * c.hiddenSize() * c.intermediateSize();
        long vocab = (long) c.vocabSize() * c.hiddenSize();
        return gpus == 1 ? 0 : Math.max(layer, vocab) * act();
    }

    public long totalBytesPerGpu() {
        return shardedStateBytesPerGpu() + activationBytesPerGpu() + gatheredLayerBytes();
    }

    public String report() {
        StringBuilder b = new StringBuilder();
        b.append(String.format("Parameters:            %,d%n", parameterCount()));
        b.append(String.format("Micro-batch:           %d x %d tokens, %d GPU(s), activation recompute %s, %d optimizer state(s)%n",
                batch, sequenceLength, gpus, activationRecompute ? "on" : "off", optimizerStates));
        b.append(String.format("Compute dtype:         %s (activations and the weights products use)%n",
                computeType == DType.F32 ? "fp32" : "bf16"));
        b.append(String.format("lm_head + log-prob:    %s%n", logProbChunkRows == 0 ? "unfused (the whole [N, V] logits at once)"
                : "fused, in chunks of " + logProbChunkRows + " rows"));
        b.append(String.format("compute weights:       %s%n", computeType == DType.F32 ? "the fp32 master weights"
                : human(computeWeightBytes()) + " (bf16 copy)"));
        b.append(String.format("fp32 master+grad+opt:  %s (all GPUs together)%n", human(trainingStateBytes())));
        b.append(String.format("per GPU, sharded:      %s%n", human(shardedStateBytesPerGpu())));
        b.append(String.format("per GPU, activations:  %s (one layer %s, residual stream %s, logits %s)%n",
                human(activationBytesPerGpu()), human(layerActivationBytes()), human(residualBytes()), human(logitsBytes())));
        b.append(String.format("per GPU, gathered:     %s (largest layer or vocabulary matrix, ZeRO-3)%n", human(gatheredLayerBytes())));
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
