package spin.model;

import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.FrozenWeights;
import spin.backend.Tensor;
import spin.dist.Communicator;
import spin.model.ParameterLayout.Names;

/**
 * MistralForCausalLM with explicit forward and backward passes on any {@link Backend}.
 *
 * <p>Training forward: token ids [B,T], a per-key mask [B,T] and next-token targets [B,T] (the
 * label of position t+1 at position t, {@link Backend#IGNORE_INDEX} where nothing is scored) give
 * per-token log-probs [B,T]; positions run 0..T-1 in every row, masked tokens keeping their place.
 * {@link #backward} takes d loss / d log-probs and accumulates parameter gradients into
 * {@link #gradients()}, layer by layer in exact reverse.
 *
 * <p>With activation recompute (gradient checkpointing) the forward keeps only each layer's input
 * and the backward recomputes the layer before differentiating it: less memory, identical results.
 *
 * <p>The lm_head and the log-prob gather run fused in chunks of rows by default (Liger's fused
 * linear cross-entropy, Cut Cross-Entropy): no [B*T, V] logits buffer exists, only one chunk of
 * {@link #logProbChunkRows()} rows, and the backward recomputes each chunk's logits before
 * differentiating it. Token log-probs and gradients equal the unfused path's up to fp32 rounding
 * (the lm_head gradient sums its rows chunk by chunk); {@link ForwardState#logits()} is only there
 * unfused ({@code setLogProbChunkRows(0)}).
 *
 * <p>Precision: the master weights ({@link #parameters()}) and gradients are F32; activations,
 * their gradients and the weights products use are the backend's {@link Backend#computeType()}.
 * When that is BF16 the model keeps a BF16 copy of the weights, rounded from the master weights
 * on the first pass after {@link #parameters()} was last handed out (whoever holds the master
 * buffer may change it: a load, an optimizer step), so a changed weight is never used stale.
 * Logits, log-probs and normalisation statistics are F32 in either case.
 *
 * <p>ZeRO-3 ({@link #sharded}): a rank's model holds only its {@link ZeroShards shard} of the
 * master weights and gradients. Each pass gathers a unit's weights (the embedding, a layer, the
 * head) before it runs, naming the next unit so its gather is issued ahead, and the backward
 * reduce-scatters each unit's gradients into the shard right after differentiating it; the
 * training passes are then collectives, which every rank of the group runs in step. A sharded
 * model has no {@link #parameters()} or {@link #gradients()} (use {@link #masterWeights()} and
 * {@link #masterGradients()}) and does not decode.
 */
public final class MistralModel implements AutoCloseable {
    /**
     * Logits one chunk of the default fused lm_head + log-prob holds: 2^23, 32 MiB in fp32, a
     * fixed budget so that the chunk does not grow with the batch (262 rows at Mistral-7B's 32,000
     * tokens, as many logits as the [2048, 4096] hidden states of a 2 x 1024-token batch).
     */
    public static final int LOGPROB_CHUNK_LOGITS = 1 << 23;

    private final MistralConfig config;
    private final Backend backend;
    private final ParameterLayout layout;
    /** The F32 master weights; null for a ZeRO-3 rank, whose {@link #zero} holds its shard of them. */
    private final ParameterBuffer parameters;
    private final ZeroShards zero;
    private final DType computeType;
    /** The BF16 weights products use, or null when they use the F32 master weights. */
    private final ParameterBuffer computeWeights;
    private boolean computeWeightsStale;
    /** An inference model ({@link #forInference}): no F32 master, the compute copy is all there is. */
    private final boolean inferenceOnly;
    private ParameterBuffer gradients;
    private boolean activationRecompute;
    private int logProbChunkRows;
    private Workspace workspace, decodeWorkspace;

    public MistralModel(MistralConfig config, Backend backend) {
        this(config, backend, null, false);
    }

    /**
     * A zero-filled model for forward passes only (generation, scoring, chat) on {@code backend}:
     * where products use a BF16 copy, only that copy is allocated, 2 bytes per parameter instead
     * of 6 (Mistral-7B: 14 GB rather than 42, the rest left to the KV cache), and
     * {@link #weightsToLoad()} is where a checkpoint goes. {@link #parameters()},
     * {@link #masterWeights()} and {@link #gradients()} are refused by name. With F32 compute (the
     * CPU backend) the master is what products use, so this is the ordinary model.
     */
    public static MistralModel forInference(MistralConfig config, Backend backend) {
        return new MistralModel(config, backend, null, backend.computeType() != DType.F32);
    }

    private MistralModel(MistralConfig config, Backend backend, Communicator communicator, boolean inferenceOnly) {
        this.config = config;
        this.backend = backend;
        this.layout = new ParameterLayout(config);
        this.computeType = backend.computeType();
        this.inferenceOnly = inferenceOnly;
        if (communicator == null) {
            this.parameters = inferenceOnly ? null : new ParameterBuffer(backend, layout);
            this.computeWeights = computeType == DType.F32 ? null : new ParameterBuffer(backend, layout, computeType);
            this.computeWeightsStale = !inferenceOnly;
            this.zero = null;
        } else {
            this.parameters = null;
            this.computeWeights = null;
            this.zero = new ZeroShards(layout, config, communicator, computeType);
        }
        this.logProbChunkRows = defaultLogProbChunkRows(config);
    }

    /**
     * A ZeRO-3 rank of {@code communicator}'s group on its backend, its master shard zero-filled:
     * every rank of the group makes one, and they train in step.
     */
    public static MistralModel sharded(MistralConfig config, Communicator communicator) {
        return new MistralModel(config, communicator.backend(), communicator, false);
    }

    /** The chunk rows a model starts with: as many rows as {@link #LOGPROB_CHUNK_LOGITS} logits make, at least one. */
    public static int defaultLogProbChunkRows(MistralConfig config) {
        return Math.max(1, LOGPROB_CHUNK_LOGITS / config.vocabSize());
    }

    /**
     * Rows the logits buffer of a pass over {@code rows} rows holds: all of them unfused
     * ({@code logProbChunkRows} 0), else one chunk. The one rule behind the forward's buffer and {@link MemoryPlan}.
     */
    static long logitBufferRows(int logProbChunkRows, long rows) {
        return logProbChunkRows == 0 ? rows : Math.min(rows, logProbChunkRows);
    }

    public MistralConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    /**
     * The F32 master weights. Handing them out marks the compute copy (where there is one) stale:
     * the next pass rounds it afresh, so writes through this buffer are always seen.
     */
    public ParameterBuffer parameters() {
        requireResident("parameters()");
        requireMaster("parameters()");
        computeWeightsStale = true;
        return parameters;
    }

    /**
     * The buffer a checkpoint is loaded into, every slot written: {@link #parameters()}, or for an
     * inference model ({@link #forInference}) its compute copy, which a loader fills with the
     * stored weights rounded as {@link Backend#cast} rounds the master (Backend.upload and write
     * round alike), so it holds the bits an ordinary model's copy would.
     */
    public ParameterBuffer weightsToLoad() {
        return inferenceOnly ? computeWeights : parameters();
    }

    private void requireMaster(String what) {
        if (inferenceOnly) {
            throw new IllegalStateException(what + " needs the F32 master weights, which a model loaded for inference"
                    + " does not hold (MistralModel.forInference); load it with ModelCheckpoint.load to train or change it");
        }
    }

    /** Whether this model is a ZeRO-3 rank holding a shard. */
    public boolean isSharded() {
        return zero != null;
    }

    /** The ZeRO-3 state of a sharded model. */
    public ZeroShards zeroShards() {
        if (zero == null) {
            throw new IllegalStateException("this model is not sharded");
        }
        return zero;
    }

    /**
     * The F32 weights an optimizer updates: {@link #parameters()}, or a rank's master shard (whose
     * slots are the 1-D pieces of each weight it owns). Marks compute copies stale likewise.
     */
    public ParameterBuffer masterWeights() {
        return zero == null ? parameters() : zero.master();
    }

    /**
     * The compute copy an optimizer step may write in the same pass as the master weights
     * ({@link spin.backend.Backend#adamwStep(spin.backend.Tensor, spin.backend.Tensor, spin.backend.Tensor,
     * spin.backend.Tensor, spin.backend.Tensor, spin.backend.StepGradient, float, float, float, float, float, long)
     * adamwStep} with a
     * compute copy), laid out like {@link #masterWeights()}; null where there is none to keep: F32
     * compute, or a ZeRO-3 rank, whose compute weights are rounded into each unit's gather buffer.
     * Call it after {@link #masterWeights()}; a caller that writes every slot of it calls
     * {@link #computeWeightsWritten()} once done, or else the copy stays stale and is rounded afresh.
     */
    public ParameterBuffer computeWeightsForStep() {
        return zero == null ? computeWeights : null;
    }

    /**
     * Marks the compute copy fresh: every slot of {@link #computeWeightsForStep()} was written with
     * the master's current values rounded, so the next pass skips the separate cast.
     */
    public void computeWeightsWritten() {
        if (computeWeightsForStep() == null) {
            throw new IllegalStateException("this model keeps no compute copy for an optimizer to write");
        }
        computeWeightsStale = false;
    }

    /** The F32 gradients laid out like {@link #masterWeights()}: {@link #gradients()}, or a rank's gradient shard. */
    public ParameterBuffer masterGradients() {
        return zero == null ? gradients() : zero.gradients();
    }

    private void requireResident(String what) {
        if (zero != null) {
            throw new IllegalStateException(what + " needs the whole model, but this is ZeRO-3 rank "
                    + zero.communicator().rank() + " of " + zero.communicator().worldSize() + ", which holds a shard");
        }
    }

    /** The dtype of activations and of the weights products use: the backend's {@link Backend#computeType()}. */
    public DType computeType() {
        return computeType;
    }

    /** The weights a pass multiplies by: the master weights, or their BF16 copy rounded afresh if stale. */
    private ParameterBuffer weights() {
        if (computeWeights == null) {
            return parameters;
        }
        if (computeWeightsStale) {
            backend.cast(computeWeights.flat(), parameters.flat());
            computeWeightsStale = false;
        }
        return computeWeights;
    }

    /** Gradient buffer, allocated zeroed on first use. */
    public ParameterBuffer gradients() {
        requireResident("gradients()");
        requireMaster("gradients()");
        if (gradients == null) {
            gradients = new ParameterBuffer(backend, layout);
        }
        return gradients;
    }

    public void setActivationRecompute(boolean enabled) {
        this.activationRecompute = enabled;
    }

    public boolean activationRecompute() {
        return activationRecompute;
    }

    /**
     * Rows per chunk of the fused lm_head + log-prob of later forwards; 0 computes the whole
     * [B*T, V] logits at once and keeps them for {@link ForwardState#logits()} until the backward.
     * The model's workspace keeps its logits buffer at the largest size a pass has asked for, so
     * set this before the first forward.
     *
     * @throws IllegalArgumentException when {@code rows} is negative
     */
    public void setLogProbChunkRows(int rows) {
        if (rows < 0) {
            throw new IllegalArgumentException("log-prob chunk rows must be >= 0 (0 = unfused), got " + rows);
        }
        this.logProbChunkRows = rows;
    }

    /** Rows per chunk of the fused lm_head + log-prob; 0 when unfused. */
    public int logProbChunkRows() {
        return logProbChunkRows;
    }

    /** Layer {@code l}'s q, k and v weights (or gradients) as one [(H + 2 KVH) * D, C] matrix. */
    private static Tensor stackedQkv(ParameterView view, int l) {
        return view.stacked(Names.q(l), Names.k(l), Names.v(l));
    }

    /** Elements per row of a layer's scratch: the stacked q/k/v product's, or the residual width where wider. */
    static int scratchWidth(MistralConfig config) {
        return Math.max(config.hiddenSize(), config.stackedQkvDim());
    }

    private Tensor lmHead(ParameterView buffer) {
        return buffer.get(config.tieWordEmbeddings() ? Names.EMBED : Names.LM_HEAD);
    }

    // ---------------------------------------------------------------- units

    /**
     * Unit {@code unit}'s weights for a pass ({@link ParameterUnits}), {@code next} being the unit
     * the pass needs after it (-1: none): the resident weights, or a rank's gathered copy.
     */
    private ParameterView unitWeights(int unit, int next) {
        return zero == null ? weights() : zero.weights(unit, next);
    }

    private void releaseUnit(int unit) {
        if (zero != null) {
            zero.release(unit);
        }
    }

    /** Where a backward accumulates unit {@code unit}'s gradients: the resident buffer, or a rank's lent unit buffer. */
    private ParameterView unitGradients(int unit) {
        return zero == null ? gradients() : zero.unitGradients(unit);
    }

    /** After unit {@code unit}'s backward: a rank reduce-scatters its gradients into its shard. */
    private void unitGradientsDone(int unit) {
        if (zero != null) {
            zero.reduceGradients(unit);
        }
    }

    /** The unit holding the lm_head's weights: the embedding's when tied. */
    private int lmHeadUnit() {
        return config.tieWordEmbeddings() ? ParameterUnits.embedding() : headUnit();
    }

    private int headUnit() {
        return config.numHiddenLayers() + 1;
    }

    // ---------------------------------------------------------------- forward

    /**
     * Runs the training forward. The returned state owns every saved activation; pass it to
     * {@link #backward} or close it.
     *
     * @param ids I32 [B,T]
     * @param keyMask I32 [B,T], 0 for keys nobody may attend to
     * @param targets I32 [B,T], next-token labels or IGNORE_INDEX
     */
    public ForwardState forward(Tensor ids, Tensor keyMask, Tensor targets) {
        int b = ids.dim(0), t = ids.dim(1);
        if (workspace == null) {
            workspace = new Workspace(backend);
        }
        ForwardState s = new ForwardState(backend, workspace.acquire(), config, computeType, b, t, ids, keyMask, targets,
                logProbChunkRows);
        int layers = config.numHiddenLayers();
        ParameterView embedding = unitWeights(ParameterUnits.embedding(), ParameterUnits.layer(0));
        backend.embeddingForward(s.residual.get(0), ids, embedding.get(Names.EMBED));
        releaseUnit(ParameterUnits.embedding());
        for (int l = 0; l < layers; l++) {
            LayerActivations acts = new LayerActivations(s.buffers, activationRecompute ? "recompute." : "layer" + l + ".",
                    config, computeType, b, t);
            int unit = ParameterUnits.layer(l);
            ParameterView w = unitWeights(unit, l + 1 < layers ? ParameterUnits.layer(l + 1) : headUnit());
            layerForward(l, w, s.residual.get(l), acts, s.scratch, s.residual.get(l + 1), s.positions, batchAttention(s));
            releaseUnit(unit);
            if (activationRecompute) {
                acts.close();
                s.layers.add(null);
            } else {
                s.layers.add(acts);
            }
        }
        Tensor last = s.residual.get(layers);
        ParameterView head = unitWeights(headUnit(), lmHeadUnit() == headUnit() ? -1 : lmHeadUnit());
        backend.rmsnormForward(s.finalNormed, s.finalRstd, last, head.get(Names.FINAL_NORM), config.rmsNormEps());
        Tensor lmHead = lmHead(lmHeadUnit() == headUnit() ? head : unitWeights(lmHeadUnit(), -1));
        for (int start = 0; start < s.rows(); start += s.logitRows) {
            LogitChunk chunk = s.logitChunk(start);
            backend.matmulForward(chunk.logits, chunk.normed, lmHead);
            backend.logprobForward(chunk.tokenLogps, chunk.vocabLse, chunk.logits, chunk.targets);
            backend.rowSumForward(chunk.logitRowSums, chunk.logits);
        }
        releaseUnit(headUnit());
        if (lmHeadUnit() != headUnit()) {
            releaseUnit(lmHeadUnit());
        }
        return s;
    }

    /** How a layer's attention turns its rotated q, k, v into {@code attention}: over the batch, or through the KV cache. */
    @FunctionalInterface
    private interface AttentionStep {
        void run(int layer, LayerActivations a);
    }

    /** The training forward's attention: every row over its own keys, under the key mask and the window. */
    private AttentionStep batchAttention(ForwardState s) {
        return (l, a) -> backend.attentionForward(a.attention, a.attentionLse, a.q, a.k, a.v, s.keyMask, config.slidingWindow());
    }

    /**
     * One decoder layer over n = B*T rows: {@code out = middle + mlp(middle)}, {@code middle = in +
     * attention(in)}; {@code scratch}, n * {@link #scratchWidth} elements, takes the stacked q/k/v
     * product and then the projections back to the residual width.
     */
    private void layerForward(int l, ParameterView w, Tensor in, LayerActivations a, Tensor scratch, Tensor out,
            Tensor positions, AttentionStep attention) {
        int n = Math.toIntExact(in.size() / config.hiddenSize());
        float eps = config.rmsNormEps(), theta = config.ropeTheta();
        backend.rmsnormForward(a.normed1, a.rstd1, in, w.get(Names.inputNorm(l)), eps);
        // One product by the stacked q/k/v weights, then RoPE fused with the split into q, k, v.
        Tensor qkv = scratch.view(0, n, config.stackedQkvDim()), projected = scratch.view(0, n, config.hiddenSize());
        backend.matmulForward(qkv, a.normed1, stackedQkv(w, l));
        backend.qkvRopeForward(a.q, a.k, a.v, qkv, positions, theta);
        attention.run(l, a);
        backend.matmulForward(projected, a.attention.reshape(n, config.queryDim()), w.get(Names.o(l)));
        backend.addRmsnormForward(a.middle, a.normed2, a.rstd2, in, projected, w.get(Names.postAttentionNorm(l)), eps);
        backend.matmulForward(a.gate, a.normed2, w.get(Names.gate(l)));
        backend.matmulForward(a.up, a.normed2, w.get(Names.up(l)));
        backend.swigluForward(a.activated, a.gate, a.up);
        backend.matmulForward(projected, a.activated, w.get(Names.down(l)));
        backend.add(out, a.middle, projected);
    }

    // ---------------------------------------------------------------- backward

    /**
     * Accumulates d loss / d parameters into {@link #gradients()} given d loss / d token log-probs
     * [B,T], then closes the state.
     */
    public void backward(ForwardState s, Tensor dTokenLogps) {
        int n = s.rows(), layers = config.numHiddenLayers();
        boolean tied = lmHeadUnit() != headUnit();
        try (s; BackwardScratch d = new BackwardScratch(s.buffers, config, computeType, s.batch, s.time)) {
            // Last chunk first: the buffer still holds its logits from the forward (unfused, that
            // chunk is every row), so only the chunks before it are recomputed.
            int lastStart = (n - 1) / s.logitRows * s.logitRows, c = config.hiddenSize();
            int afterHead = layers > 0 ? ParameterUnits.layer(layers - 1) : ParameterUnits.embedding();
            ParameterView w = unitWeights(headUnit(), tied ? lmHeadUnit() : afterHead), g = unitGradients(headUnit());
            // Tied, the embedding's gradients take the lm_head's here and the lookup's at the end.
            ParameterView embeddingGradients = tied ? unitGradients(lmHeadUnit()) : null;
            Tensor lmHead = lmHead(tied ? unitWeights(lmHeadUnit(), afterHead) : w),
                    dLmHead = lmHead(tied ? embeddingGradients : g);
            for (int start = lastStart; start >= 0; start -= s.logitRows) {
                LogitChunk chunk = s.logitChunk(start);
                if (start != lastStart) {
                    backend.matmulForward(chunk.logits, chunk.normed, lmHead);
                }
                // In F32 the logits are overwritten in place (not needed any more); in BF16 the
                // gradient goes to a BF16 buffer of the chunk's shape, the lm_head product's dtype.
                Tensor dLogits = computeType == DType.F32 ? chunk.logits
                        : d.dLogits(s.buffers, computeType, s.logitRows, config.vocabSize()).view(0, chunk.rows, config.vocabSize());
                backend.logprobBackward(dLogits, dTokenLogps.view(start, chunk.rows), chunk.logits, chunk.targets, chunk.vocabLse);
                backend.matmulBackward(d.normedC.view((long) start * c, chunk.rows, c), dLmHead, dLogits, chunk.normed, lmHead);
            }
            Tensor last = s.residual.get(layers);
            backend.rmsnormBackward(d.residual, g.get(Names.FINAL_NORM), d.normedC, last, w.get(Names.FINAL_NORM),
                    s.finalRstd);
            unitGradientsDone(headUnit());
            releaseUnit(headUnit());
            if (tied) {
                releaseUnit(lmHeadUnit());
            }
            for (int l = layers - 1; l >= 0; l--) {
                int unit = ParameterUnits.layer(l);
                ParameterView lw = unitWeights(unit, l > 0 ? ParameterUnits.layer(l - 1) : -1), lg = unitGradients(unit);
                LayerActivations acts = s.layers.get(l);
                boolean recomputed = acts == null;
                if (recomputed) {
                    acts = new LayerActivations(s.buffers, "recompute.", config, computeType, s.batch, s.time);
                    layerForward(l, lw, s.residual.get(l), acts, s.scratch, d.scratchC, s.positions, batchAttention(s));
                }
                layerBackward(l, lw, s, s.residual.get(l), acts, d, lg, n);
                if (recomputed) {
                    acts.close();
                }
                unitGradientsDone(unit);
                releaseUnit(unit);
            }
            // The lookup's gradient needs no weights.
            ParameterView eg = tied ? embeddingGradients : unitGradients(ParameterUnits.embedding());
            backend.embeddingBackward(eg.get(Names.EMBED), s.ids, d.residual);
            unitGradientsDone(ParameterUnits.embedding());
        }
    }

    /** On entry d.residual holds d loss / d layer output; on return d loss / d layer input. */
    private void layerBackward(int l, ParameterView w, ForwardState s, Tensor in, LayerActivations a, BackwardScratch d,
            ParameterView g, int n) {
        // MLP branch: out = middle + down(silu(gate(normed2)) * up(normed2))
        backend.matmulBackward(d.activated, g.get(Names.down(l)), d.residual, a.activated, w.get(Names.down(l)));
        backend.swigluBackward(d.gate, d.up, d.activated, a.gate, a.up);
        backend.matmulBackward(d.normedC, g.get(Names.gate(l)), d.gate, a.normed2, w.get(Names.gate(l)));
        backend.matmulBackward(d.scratchC, g.get(Names.up(l)), d.up, a.normed2, w.get(Names.up(l)));
        backend.accumulate(d.normedC, d.scratchC);
        backend.rmsnormBackward(d.scratchC, g.get(Names.postAttentionNorm(l)), d.normedC, a.middle,
                w.get(Names.postAttentionNorm(l)), a.rstd2);
        backend.accumulate(d.residual, d.scratchC);
        // Attention branch: middle = in + o(attention(rope(q(normed1)), rope(k(normed1)), v(normed1)))
        backend.matmulBackward(d.attention.reshape(n, config.queryDim()), g.get(Names.o(l)), d.residual,
                a.attention.reshape(n, config.queryDim()), w.get(Names.o(l)));
        backend.attentionBackward(d.q, d.k, d.v, d.attention, a.q, a.k, a.v, s.keyMask, a.attention, a.attentionLse,
                config.slidingWindow());
        // The forward's scratch is free here (a recomputed layer is done with it): it takes d qkv.
        Tensor dQkv = s.scratch.view(0, n, config.stackedQkvDim());
        backend.qkvRopeBackward(dQkv, d.q, d.k, d.v, s.positions, config.ropeTheta());
        backend.matmulBackward(d.normedC, stackedQkv(g, l), dQkv, a.normed1, stackedQkv(w, l));
        backend.rmsnormBackward(d.scratchC, g.get(Names.inputNorm(l)), d.normedC, in, w.get(Names.inputNorm(l)),
                a.rstd1);
        backend.accumulate(d.residual, d.scratchC);
    }

    // ---------------------------------------------------------------- cached decoding

    /**
     * Freezes every matrix the forward multiplies by (attention and MLP projections, lm_head) for
     * inference, through {@link Backend#freezeWeights}: until the handle is closed the parameters
     * must not change, and the CPU backend keeps packed copies of them (up to as much memory again
     * as those weights) so that steps skip repacking them, and computes every row of a step's
     * matmuls in the same order whatever the number of rows: a sequence's logits then have the
     * same bits whatever else is in the step. Generation runs hold one for their duration
     * ({@code BatchGenerator.generate}).
     */
    public FrozenWeights freezeWeights() {
        requireResident("decoding");
        ParameterBuffer w = weights();
        List<Tensor> weights = new ArrayList<>();
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            weights.add(stackedQkv(w, l));
            for (String name : new String[] {Names.o(l), Names.gate(l), Names.up(l), Names.down(l)}) {
                weights.add(w.get(name));
            }
        }
        weights.add(lmHead(w));
        return backend.freezeWeights(weights);
    }

    /**
     * Appends tokens to sequences held in {@code cache} (a ragged batch: any number of new tokens per
     * sequence, prompts and single decode steps alike) and returns the logits after each sequence's
     * last new token, F32 [S, V] in the order of {@code sequenceIds}. The logits live in a buffer
     * the model reuses: they stay valid until the next call (closing them is allowed and frees
     * nothing). Gives the same logits as {@link #forward} over the whole prefix. Fails without
     * touching the cache when its free blocks cannot hold the new tokens.
     */
    public Tensor extend(KvCache cache, int[] sequenceIds, int[][] newTokens) {
        requireResident("decoding");
        int sequences = sequenceIds.length;
        int m = 0;
        for (int[] tokens : newTokens) {
            if (tokens.length == 0) {
                throw new IllegalArgumentException("every sequence needs at least one new token");
            }
            m += tokens.length;
        }
        int needed = 0;
        for (int i = 0; i < sequences; i++) {
            needed += cache.blocksNeeded(sequenceIds[i], newTokens[i].length);
        }
        if (needed > cache.freeBlocks()) {
            throw new IllegalStateException("KV cache full: " + needed + " blocks needed, " + cache.freeBlocks() + " free");
        }
        int[] starts = new int[sequences];
        for (int i = 0; i < sequences; i++) {
            starts[i] = cache.length(sequenceIds[i]);
            if (starts[i] + newTokens[i].length > config.maxPositionEmbeddings()) {
                throw new IllegalArgumentException("sequence " + sequenceIds[i] + " would reach " + (starts[i] + newTokens[i].length)
                        + " tokens, beyond max_position_embeddings " + config.maxPositionEmbeddings());
            }
        }
        int maxBlocks = 1;
        for (int i = 0; i < sequences; i++) {
            cache.reserve(sequenceIds[i], newTokens[i].length);
            maxBlocks = Math.max(maxBlocks, cache.blocks(sequenceIds[i]).size());
        }
        // Every index array travels in one I32 tensor, one allocation per step: token ids [m],
        // sequence of each token [m], positions [m], cache rows [m], each sequence's last token [S]
        // and the block table [S, maxBlocks].
        int seqAt = m, posAt = 2 * m, rowAt = 3 * m, lastAt = 4 * m, tableAt = 4 * m + sequences;
        int[] indices = new int[tableAt + sequences * maxBlocks];
        for (int i = 0, at = 0; i < sequences; i++) {
            int id = sequenceIds[i];
            for (int j = 0; j < newTokens[i].length; j++, at++) {
                indices[at] = newTokens[i][j];
                indices[seqAt + at] = i;
                indices[posAt + at] = starts[i] + j;
                indices[rowAt + at] = cache.row(id, starts[i] + j);
            }
            indices[lastAt + i] = at - 1;
            List<Integer> blocks = cache.blocks(id);
            for (int j = 0; j < blocks.size(); j++) {
                indices[tableAt + i * maxBlocks + j] = blocks.get(j);
            }
        }
        int c = config.hiddenSize(), h = config.numAttentionHeads(), kvh = config.numKeyValueHeads(), d = config.headDim();
        if (decodeWorkspace == null) {
            decodeWorkspace = new Workspace(backend);
        }
        // The buffers stay in the workspace after the call: the returned logits are a view of one.
        ParameterBuffer weights = weights();
        try (Workspace.Buffers w = decodeWorkspace.acquire()) {
            Tensor index = w.take("index", DType.I32, indices.length);
            backend.write(index, indices);
            Tensor idT = index.view(0, m), seqT = index.view(seqAt, m), posT = index.view(posAt, 1, m),
                    rowT = index.view(rowAt, m), lastT = index.view(lastAt, sequences),
                    tableT = index.view(tableAt, sequences, maxBlocks);
            LayerActivations a = new LayerActivations(w, "layer.", config, computeType, 1, m);
            Tensor x = w.take("x", computeType, m, c), next = w.take("next", computeType, m, c),
                    scratch = w.take("scratch", computeType, m, scratchWidth(config));
            int rows = m;
            AttentionStep cached = (l, acts) -> {
                Tensor keys = cache.keys(l), values = cache.values(l);
                int cacheRows = keys.dim(0);
                backend.scatterRows(keys.reshape(cacheRows, kvh * d), acts.k.reshape(rows, kvh * d), rowT);
                backend.scatterRows(values.reshape(cacheRows, kvh * d), acts.v.reshape(rows, kvh * d), rowT);
                backend.attentionCachedForward(acts.attention.reshape(rows, h, d), acts.q.reshape(rows, h, d), keys, values,
                        tableT, seqT, posT.reshape(rows), cache.blockSize(), config.slidingWindow());
            };
            backend.embeddingForward(x, idT, weights.get(Names.EMBED));
            Tensor in = x, out = next;
            for (int l = 0; l < config.numHiddenLayers(); l++) {
                layerForward(l, weights, in, a, scratch, out, posT, cached);
                Tensor swap = in;
                in = out;
                out = swap;
            }
            // Only each sequence's last token goes through the final norm and lm_head.
            Tensor last = a.normed1.view(0, sequences, c), lastNormed = a.middle.view(0, sequences, c),
                    lastRstd = a.rstd1.view(0, sequences);
            backend.embeddingForward(last, lastT, in);
            backend.rmsnormForward(lastNormed, lastRstd, last, weights.get(Names.FINAL_NORM), config.rmsNormEps());
            Tensor logits = w.take("logits", DType.F32, sequences, config.vocabSize());
            backend.matmulForward(logits, lastNormed, lmHead(weights));
            for (int i = 0; i < sequences; i++) {
                cache.advance(sequenceIds[i], newTokens[i].length);
            }
            return logits;
        }
    }

    @Override
    public void close() {
        if (parameters != null) {
            parameters.close();
        }
        if (zero != null) {
            zero.close();
        }
        if (computeWeights != null) {
            computeWeights.close();
        }
        for (Workspace w : new Workspace[] {workspace, decodeWorkspace}) {
            if (w != null) {
                w.close();
            }
        }
        if (gradients != null) {
            gradients.close();
        }
    }

    // ---------------------------------------------------------------- saved state

    /**
     * One buffer a training pass takes from the model's {@link Workspace}: its key, dtype and
     * shape. The passes allocate from these lists and {@link MemoryPlan} counts them, so the plan
     * sees every buffer the code takes.
     */
    record PassBuffer(String key, DType dtype, int... shape) {
        /** Bytes of the buffer as asked for (the workspace adds its spare: {@link Workspace#reservedElements}). */
        long bytes() {
            return Tensor.elementCount(shape) * dtype.byteSize();
        }
    }

    private static Tensor[] take(Workspace.Buffers buffers, List<PassBuffer> specs) {
        Tensor[] taken = new Tensor[specs.size()];
        for (int i = 0; i < taken.length; i++) {
            PassBuffer p = specs.get(i);
            taken[i] = buffers.take(p.key(), p.dtype(), p.shape());
        }
        return taken;
    }

    /**
     * The unit-gradient buffers a ZeRO-3 backward holds at once: the unit being differentiated and
     * the previous one, whose reduce-scatter is still in flight ({@link ZeroShards}), and beside them
     * the embedding's when the lm_head is the embedding (tied), which takes the lm_head's gradient
     * before the lookup's.
     */
    static int unitGradientBuffersAtOnce(MistralConfig config) {
        return config.tieWordEmbeddings() ? 3 : 2;
    }

    /** Everything the forward saves for the backward; closing frees it. */
    public static final class ForwardState implements AutoCloseable {
        private boolean closed;
        final Workspace.Buffers buffers;
        final int batch, time;
        /** Rows of {@link #logits}: every row when unfused, else one chunk's (the last chunk may use fewer). */
        final int logitRows;
        private final boolean unfused;
        final Tensor ids, keyMask, targets, positions;
        final List<Tensor> residual = new ArrayList<>();
        final List<LayerActivations> layers = new ArrayList<>();
        final Tensor finalNormed, finalRstd, logits, tokenLogps, vocabLse, logitRowSums, scratch;

        ForwardState(Backend backend, Workspace.Buffers buffers, MistralConfig c, DType act, int b, int t, Tensor ids,
                Tensor keyMask, Tensor targets, int logProbChunkRows) {
            this.buffers = buffers;
            this.batch = b;
            this.time = t;
            this.unfused = logProbChunkRows == 0;
            this.logitRows = Math.toIntExact(logitBufferRows(logProbChunkRows, (long) b * t));
            this.ids = ids;
            this.keyMask = keyMask;
            this.targets = targets;
            int[] pos = new int[b * t];
            for (int i = 0; i < pos.length; i++) {
                pos[i] = i % t;
            }
            Tensor[] taken = take(buffers, buffers(c, act, b, t, logitRows));
            int at = 0;
            this.positions = taken[at++];
            backend.write(positions, pos);
            for (int l = 0; l <= c.numHiddenLayers(); l++) {
                residual.add(taken[at++]);
            }
            finalNormed = taken[at++];
            finalRstd = taken[at++];
            logits = taken[at++];
            tokenLogps = taken[at++];
            vocabLse = taken[at++];
            logitRowSums = taken[at++];
            scratch = taken[at];
        }

        /**
         * The buffers a forward state takes, in the order its constructor assigns them: positions,
         * the residual stream at every layer boundary, the final norm's output and statistics, the
         * logits buffer of {@code logitRows} rows, the per-row log-prob outputs and the projection
         * scratch.
         */
        static List<PassBuffer> buffers(MistralConfig c, DType act, int b, int t, int logitRows) {
            int n = b * t;
            List<PassBuffer> all = new ArrayList<>();
            all.add(new PassBuffer("positions", DType.I32, b, t));
            for (int l = 0; l <= c.numHiddenLayers(); l++) {
                all.add(new PassBuffer("residual." + l, act, n, c.hiddenSize()));
            }
            all.add(new PassBuffer("finalNormed", act, n, c.hiddenSize()));
            all.add(new PassBuffer("finalRstd", DType.F32, n));
            all.add(new PassBuffer("logits", DType.F32, logitRows, c.vocabSize()));
            all.add(new PassBuffer("tokenLogps", DType.F32, b, t));
            all.add(new PassBuffer("vocabLse", DType.F32, n));
            all.add(new PassBuffer("logitRowSums", DType.F32, n));
            all.add(new PassBuffer("scratch", act, n, scratchWidth(c)));
            return all;
        }

        int rows() {
            return batch * time;
        }

        /** Views of the rows [start, start + logitRows) (fewer at the end) and of the logits buffer for them. */
        LogitChunk logitChunk(int start) {
            int rows = Math.min(logitRows, rows() - start), width = finalNormed.dim(1);
            return new LogitChunk(rows, logits.view(0, rows, logits.dim(1)), finalNormed.view((long) start * width, rows, width),
                    targets.view(start, rows), tokenLogps.view(start, rows), vocabLse.view(start, rows),
                    logitRowSums.view(start, rows));
        }

        /** Per-token log-probs of the targets, [B,T]; 0 where the target is ignored. */
        public Tensor tokenLogps() {
            return tokenLogps;
        }

        /** Sum over the vocabulary of each row's logits, [B*T]: what the logits/* metrics need, in either mode. */
        public Tensor logitRowSums() {
            return logitRowSums;
        }

        /**
         * Logits [B*T, V]; valid until {@link MistralModel#backward} (which reuses their memory).
         *
         * @throws IllegalStateException when the forward ran fused, which keeps no [B*T, V] logits
         */
        public Tensor logits() {
            if (!unfused) {
                throw new IllegalStateException("the fused lm_head + log-prob keeps no [B*T, V] logits (it computes them "
                        + logitRows + " rows at a time); call setLogProbChunkRows(0) on the model before the forward");
            }
            return logits;
        }

        /** Frees (or hands back) every buffer; closing again does nothing, so backward's close and a try-with-resources combine. */
        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            positions.close();
            residual.forEach(Tensor::close);
            for (LayerActivations a : layers) {
                if (a != null) {
                    a.close();
                }
            }
            finalNormed.close();
            finalRstd.close();
            logits.close();
            tokenLogps.close();
            vocabLse.close();
            logitRowSums.close();
            scratch.close();
            buffers.close();
        }
    }

    /** One chunk of rows of the lm_head + log-prob: views into the forward state, {@code logits} [rows, V]. */
    private record LogitChunk(int rows, Tensor logits, Tensor normed, Tensor targets, Tensor tokenLogps, Tensor vocabLse,
            Tensor logitRowSums) {}

    /** One layer's saved activations: of the compute dtype {@code act}, the statistics F32. */
    static final class LayerActivations implements AutoCloseable {
        final Tensor normed1, rstd1, q, k, v, attention, attentionLse, middle, normed2, rstd2, gate, up, activated;

        LayerActivations(Workspace.Buffers buffers, String key, MistralConfig c, DType act, int b, int t) {
            Tensor[] x = take(buffers, buffers(key, c, act, b, t));
            normed1 = x[0];
            rstd1 = x[1];
            q = x[2];
            k = x[3];
            v = x[4];
            attention = x[5];
            attentionLse = x[6];
            middle = x[7];
            normed2 = x[8];
            rstd2 = x[9];
            gate = x[10];
            up = x[11];
            activated = x[12];
        }

        /** The buffers one layer's activations take under {@code key}, in the order the constructor assigns them. */
        static List<PassBuffer> buffers(String key, MistralConfig c, DType act, int b, int t) {
            int n = b * t;
            return List.of(new PassBuffer(key + "normed1", act, n, c.hiddenSize()),
                    new PassBuffer(key + "rstd1", DType.F32, n),
                    new PassBuffer(key + "q", act, b, t, c.numAttentionHeads(), c.headDim()),
                    new PassBuffer(key + "k", act, b, t, c.numKeyValueHeads(), c.headDim()),
                    new PassBuffer(key + "v", act, b, t, c.numKeyValueHeads(), c.headDim()),
                    new PassBuffer(key + "attention", act, b, t, c.numAttentionHeads(), c.headDim()),
                    new PassBuffer(key + "attentionLse", DType.F32, b, c.numAttentionHeads(), t),
                    new PassBuffer(key + "middle", act, n, c.hiddenSize()),
                    new PassBuffer(key + "normed2", act, n, c.hiddenSize()),
                    new PassBuffer(key + "rstd2", DType.F32, n),
                    new PassBuffer(key + "gate", act, n, c.intermediateSize()),
                    new PassBuffer(key + "up", act, n, c.intermediateSize()),
                    new PassBuffer(key + "activated", act, n, c.intermediateSize()));
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[] {normed1, rstd1, q, k, v, attention, attentionLse, middle, normed2, rstd2, gate, up,
                    activated}) {
                t.close();
            }
        }
    }

    /** Gradient buffers reused by every layer of one backward pass, of the compute dtype {@code act}. */
    static final class BackwardScratch implements AutoCloseable {
        final Tensor residual, normedC, scratchC, attention, q, k, v, gate, up, activated;
        private Tensor dLogits;

        BackwardScratch(Workspace.Buffers buffers, MistralConfig c, DType act, int b, int t) {
            Tensor[] x = take(buffers, buffers(c, act, b, t));
            residual = x[0];
            normedC = x[1];
            scratchC = x[2];
            attention = x[3];
            q = x[4];
            k = x[5];
            v = x[6];
            gate = x[7];
            up = x[8];
            activated = x[9];
        }

        /** The buffers a backward takes for every layer, in the order the constructor assigns them. */
        static List<PassBuffer> buffers(MistralConfig c, DType act, int b, int t) {
            int n = b * t;
            return List.of(new PassBuffer("d.residual", act, n, c.hiddenSize()),
                    new PassBuffer("d.normedC", act, n, c.hiddenSize()),
                    new PassBuffer("d.scratchC", act, n, c.hiddenSize()),
                    new PassBuffer("d.attention", act, b, t, c.numAttentionHeads(), c.headDim()),
                    new PassBuffer("d.q", act, b, t, c.numAttentionHeads(), c.headDim()),
                    new PassBuffer("d.k", act, b, t, c.numKeyValueHeads(), c.headDim()),
                    new PassBuffer("d.v", act, b, t, c.numKeyValueHeads(), c.headDim()),
                    new PassBuffer("d.gate", act, n, c.intermediateSize()),
                    new PassBuffer("d.up", act, n, c.intermediateSize()),
                    new PassBuffer("d.activated", act, n, c.intermediateSize()));
        }

        /**
         * The gradient buffer of one chunk of logits where the compute dtype is not F32 (in F32 the
         * logits buffer takes its gradient in place): [rows, V] of {@code act}.
         */
        static PassBuffer dLogitsBuffer(DType act, int rows, int vocab) {
            return new PassBuffer("d.logits", act, rows, vocab);
        }

        /** The gradient of one chunk of logits in the compute dtype, [rows, V], taken on first use. */
        Tensor dLogits(Workspace.Buffers buffers, DType act, int rows, int vocab) {
            if (dLogits == null) {
                PassBuffer spec = dLogitsBuffer(act, rows, vocab);
                dLogits = buffers.take(spec.key(), spec.dtype(), spec.shape());
            }
            return dLogits;
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[] {residual, normedC, scratchC, attention, q, k, v, gate, up, activated, dLogits}) {
                if (t != null) {
                    t.close();
                }
            }
        }
    }
}
