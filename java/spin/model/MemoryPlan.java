package spin.model;

import java.util.ArrayList;
import java.util.List;
import spin.backend.DType;
import spin.model.MistralModel.PassBuffer;
import spin.nativebind.CublasLt;

/**
 * Bytes one GPU holds while training, from the config, the micro-batch and the sequence length:
 * what the code allocates, buffer by buffer, so that the CUDA backend's pool peak
 * ({@link spin.backend.Backend#memoryUsage()}) over training steps is {@link #poolBytesPerGpu()}
 * up to the few small tensors named below.
 *
 * <p>Two layouts ({@link MistralModel}):
 * <ul>
 *   <li><b>resident</b> (one device, {@code sharded} false): the fp32 master weights, their copy
 *       in the compute dtype (none in fp32), fp32 gradients and the optimizer's fp32 state, each
 *       one whole {@link ParameterBuffer} (rounded up to whole rows);
 *   <li><b>ZeRO-3 rank</b> ({@code sharded}, any world size {@code gpus}): the fp32 master,
 *       gradient and optimizer shards of {@link ShardLayout#shardTotal()} elements each (every
 *       unit padded to a multiple of the world size), no compute copy, up to
 *       {@link ZeroShards#GATHER_BUFFERS} gather buffers of the largest padded unit in the compute
 *       dtype, and the fp32 unit-gradient buffers a backward holds at once
 *       ({@link MistralModel#unitGradientBuffersAtOnce}).
 * </ul>
 * Both add the pass's {@link Workspace}: every buffer the forward and backward take
 * ({@link MistralModel.PassBuffer}), each with the workspace's spare quarter; the micro-batch's
 * own tensors (uploaded ids, key mask and targets, d loss / d log-probs, the SPIN objective's
 * per-row tensors); and the largest op scratch a backward takes from the pool at once. Not
 * counted: a few F64 scalars of metrics and checks (under 1 KiB), and a frozen opponent's model
 * (the trainer adds it).
 *
 * <p>Outside the pool the CUDA backend holds cuBLASLt's workspace ({@link CublasLt#WORKSPACE_BYTES},
 * cudaMalloc'd once); {@link #totalBytesPerGpu()} adds it. The CUDA context and pinned staging
 * memory (host memory) are not counted.
 *
 * @param batch sequences per micro-batch (SPIN: twice the records, real and generated)
 * @param gpus the world size: 1 unless {@code sharded}
 * @param optimizerStates fp32 buffers per parameter the optimizer keeps (RMSprop 1, AdamW 2)
 * @param logProbChunkRows the model's {@link MistralModel#logProbChunkRows()}: 0 plans the whole
 *     [N, V] logits, else one chunk of that many rows
 * @param computeType the backend's {@link spin.backend.Backend#computeType()}: F32 or BF16
 * @param sharded whether the model is a ZeRO-3 rank ({@link MistralModel#sharded}), as the
 *     trainer makes one whenever it is given communicators, even at world size 1
 */
public record MemoryPlan(MistralConfig config, int batch, int sequenceLength, int gpus, boolean activationRecompute,
        int optimizerStates, int logProbChunkRows, DType computeType, boolean sharded) {

    /**
     * Rows per block of the RMSNorm backward, each block writing a partial weight gradient of C
     * floats to the scratch spin_rmsnorm_backward_scratch_bytes asks for (kernels/rmsnorm.cu).
     */
    private static final int RMSNORM_BACKWARD_ROWS = 8;

    public MemoryPlan {
        if (batch <= 0 || sequenceLength <= 0 || gpus <= 0 || optimizerStates < 0 || logProbChunkRows < 0) {
            throw new IllegalArgumentException("batch, sequence length and GPUs must be positive, optimizer states and "
                    + "log-prob chunk rows not negative");
        }
        if (computeType != DType.F32 && computeType != DType.BF16) {
            throw new IllegalArgumentException("the compute dtype is F32 or BF16, not " + computeType);
        }
        if (gpus > 1 && !sharded) {
            throw new IllegalArgumentException("a model on " + gpus + " GPUs is sharded (ZeRO-3); a resident model has one");
        }
    }

    /** The plan the CLI makes: one GPU holds the resident model, more a ZeRO-3 rank each. */
    public MemoryPlan(MistralConfig config, int batch, int sequenceLength, int gpus, boolean activationRecompute,
            int optimizerStates, int logProbChunkRows, DType computeType) {
        this(config, batch, sequenceLength, gpus, activationRecompute, optimizerStates, logProbChunkRows, computeType, gpus > 1);
    }

    /** Bytes of one activation element. */
    private long act() {
        return computeType.byteSize();
    }

    private ParameterLayout layout() {
        return new ParameterLayout(config);
    }

    public long parameterCount() {
        return layout().totalSize();
    }

    /** How ZeRO-3 splits the units over {@link #gpus} ranks (meaningful for a sharded plan). */
    public ShardLayout shards() {
        return new ShardLayout(new ParameterUnits(layout(), config), gpus);
    }

    /** Elements of each fp32 parameter-sized buffer this GPU holds: the whole layout, or a rank's shard, in whole rows. */
    private long stateElements() {
        return ParameterBuffer.allocatedElements(sharded ? shards().shardTotal() : parameterCount());
    }

    /** The fp32 master weights: the whole model, or this rank's shard. */
    public long masterWeightBytes() {
        return stateElements() * Float.BYTES;
    }

    /** The fp32 gradients, laid out as the master weights. */
    public long gradientBytes() {
        return stateElements() * Float.BYTES;
    }

    /** The optimizer's fp32 state buffers, laid out as the master weights. */
    public long optimizerStateBytes() {
        return optimizerStates * stateElements() * Float.BYTES;
    }

    /** fp32 master weights, gradients and optimizer state on this GPU. */
    public long trainingStateBytes() {
        return masterWeightBytes() + gradientBytes() + optimizerStateBytes();
    }

    /**
     * The resident weights products use: a copy in the compute dtype, or none where that is F32 (the
     * master weights serve) or the model is sharded (it gathers each unit instead).
     */
    public long computeWeightBytes() {
        return computeType == DType.F32 || sharded ? 0 : ParameterBuffer.allocatedElements(parameterCount()) * act();
    }

    /** A ZeRO-3 rank's gather buffers: as many as the passes keep, each the largest padded unit in the compute dtype. */
    public long gatherBufferBytes() {
        if (!sharded) {
            return 0;
        }
        ShardLayout s = shards();
        return Math.min(ZeroShards.GATHER_BUFFERS, s.units().count()) * s.largestPadded() * act();
    }

    /** A ZeRO-3 rank's fp32 unit-gradient buffers, each the largest padded unit, as many as a backward holds at once. */
    public long unitGradientBytes() {
        return sharded ? MistralModel.unitGradientBuffersAtOnce(config) * shards().largestPadded() * Float.BYTES : 0;
    }

    private long rows() {
        return (long) batch * sequenceLength;
    }

    private int logitRows() {
        return Math.toIntExact(MistralModel.logitBufferRows(logProbChunkRows, rows()));
    }

    /** Every buffer a forward and backward take from the model's workspace. */
    private List<PassBuffer> passBuffers() {
        List<PassBuffer> all = new ArrayList<>(MistralModel.ForwardState.buffers(config, computeType, batch, sequenceLength,
                logitRows()));
        // With recompute one set of layer buffers serves every layer, in the forward and again in the backward.
        int layerSets = activationRecompute ? 1 : config.numHiddenLayers();
        for (int l = 0; l < layerSets; l++) {
            all.addAll(MistralModel.LayerActivations.buffers("layer" + l + ".", config, computeType, batch, sequenceLength));
        }
        all.addAll(MistralModel.BackwardScratch.buffers(config, computeType, batch, sequenceLength));
        if (computeType != DType.F32) {
            all.add(MistralModel.BackwardScratch.dLogitsBuffer(computeType, logitRows(), config.vocabSize()));
        }
        return all;
    }

    /** The workspace's bytes: every pass buffer with its spare quarter. */
    public long workspaceBytes() {
        long total = 0;
        for (PassBuffer p : passBuffers()) {
            total += Workspace.reservedElements(p.bytes() / p.dtype().byteSize()) * p.dtype().byteSize();
        }
        return total;
    }

    private long bytesOf(String keyPrefix) {
        long total = 0;
        for (PassBuffer p : passBuffers()) {
            if (p.key().startsWith(keyPrefix)) {
                total += p.bytes();
            }
        }
        return total;
    }

    /** What one layer saves for its backward, as asked for: activations in the compute dtype, two rstd and the attention lse in fp32. */
    public long layerActivationBytes() {
        return bytesOf("layer0.");
    }

    /** The residual stream kept at every layer boundary (all that survives of the layers with recompute), as asked for. */
    public long residualBytes() {
        return bytesOf("residual.");
    }

    /**
     * The fp32 logits buffer, [N, V] unfused or one chunk of rows fused, and where the compute
     * dtype is not F32 the gradient of as many logits in it (the fp32 buffer takes its own in place).
     */
    public long logitsBytes() {
        return bytesOf("logits") + bytesOf("d.logits");
    }

    /**
     * The micro-batch's own tensors, allocated per micro-batch outside the workspace: the uploaded
     * ids, key mask and targets (I32 [B, T] each), d loss / d token log-probs (F32 [B, T]), and the
     * SPIN objective's per-row F32 [B] tensors (the opponent's scores, the policy's sums, their
     * gradient; SFT has none, 12 bytes a sequence less).
     */
    public long batchTensorBytes() {
        return rows() * (3L * Integer.BYTES + Float.BYTES) + 3L * batch * Float.BYTES;
    }

    /**
     * The largest scratch one op of the backward takes from the pool while everything else is
     * live: the RMSNorm backward's per-block partial weight gradients (fp32 [ceil(N / 8), C]) or
     * the attention backward's delta (fp32 [B, H, T], spin_attention_backward_scratch_bytes).
     */
    public long opScratchBytes() {
        long rmsnorm = (rows() + RMSNORM_BACKWARD_ROWS - 1) / RMSNORM_BACKWARD_ROWS * config.hiddenSize() * Float.BYTES;
        long attention = rows() * config.numAttentionHeads() * Float.BYTES;
        return Math.max(rmsnorm, attention);
    }

    /** Activations per GPU for one forward + backward of the micro-batch: the workspace, the batch's tensors, the op scratch. */
    public long activationBytesPerGpu() {
        return workspaceBytes() + batchTensorBytes() + opScratchBytes();
    }

    /** The predicted peak of the device's stream-ordered pool over training steps: what {@code memoryUsage()} measures. */
    public long poolBytesPerGpu() {
        return trainingStateBytes() + computeWeightBytes() + gatherBufferBytes() + unitGradientBytes() + activationBytesPerGpu();
    }

    /** cuBLASLt's workspace, allocated outside the pool once per device. */
    public long cublasWorkspaceBytes() {
        return CublasLt.WORKSPACE_BYTES;
    }

    /** Device memory one GPU needs: the pool's peak and cuBLASLt's workspace. */
    public long totalBytesPerGpu() {
        return poolBytesPerGpu() + cublasWorkspaceBytes();
    }

    public String report() {
        StringBuilder b = new StringBuilder();
        b.append(String.format("Parameters:            %,d%n", parameterCount()));
        b.append(String.format("Micro-batch:           %d x %d tokens, activation recompute %s, %d optimizer state(s)%n",
                batch, sequenceLength, activationRecompute ? "on" : "off", optimizerStates));
        b.append(String.format("Layout:                %s%n", sharded
                ? "ZeRO-3, one rank of " + gpus + " (shards of " + String.format("%,d", shards().shardTotal()) + " elements)"
                : "resident on one GPU"));
        b.append(String.format("Compute dtype:         %s (activations and the weights products use)%n",
                computeType == DType.F32 ? "fp32" : "bf16"));
        b.append(String.format("lm_head + log-prob:    %s%n", logProbChunkRows == 0 ? "unfused (the whole [N, V] logits at once)"
                : "fused, in chunks of " + logProbChunkRows + " rows"));
        b.append(String.format("fp32 master weights:   %s%n", human(masterWeightBytes())));
        b.append(String.format("fp32 gradients:        %s%n", human(gradientBytes())));
        b.append(String.format("optimizer state:       %s%n", human(optimizerStateBytes())));
        b.append(String.format("compute weights:       %s%n", sharded ? "gathered per unit (below)"
                : computeType == DType.F32 ? "the fp32 master weights" : human(computeWeightBytes()) + " (bf16 copy)"));
        if (sharded) {
            b.append(String.format("gather buffers:        %s (largest unit, %,d elements padded)%n", human(gatherBufferBytes()),
                    shards().largestPadded()));
            b.append(String.format("unit gradients:        %s (fp32, lent to the backward)%n", human(unitGradientBytes())));
        }
        b.append(String.format("workspace:             %s (one layer %s, residual stream %s, logits %s; 25%% spare each)%n",
                human(workspaceBytes()), human(layerActivationBytes()), human(residualBytes()), human(logitsBytes())));
        b.append(String.format("batch tensors:         %s (ids, mask, targets, log-prob gradients)%n", human(batchTensorBytes())));
        b.append(String.format("op scratch:            %s (largest backward op)%n", human(opScratchBytes())));
        b.append(String.format("pool peak per GPU:     %s (%,d bytes)%n", human(poolBytesPerGpu()), poolBytesPerGpu()));
        b.append(String.format("cuBLASLt workspace:    %s (outside the pool)%n", human(cublasWorkspaceBytes())));
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
