package spin.backend;

import java.util.List;

/**
 * The compute surface the model, losses, optimizers and ZeRO code are written against.
 *
 * <h2>Shapes</h2>
 * B batch, T time, C model dim, H query heads, KVH key/value heads (H is a multiple of KVH: grouped
 * query attention), D head dim, V vocab, F feed-forward dim, N = B*T rows. Every tensor is
 * row-major and contiguous; [B,T,H,D] and [N,H*D] name the same memory.
 *
 * <h2>The gradient rule</h2>
 * Every {@code xForward} has an {@code xBackward}. Parameter gradients (dWeight, dTable)
 * <b>accumulate</b> ({@code +=}), so that micro-batches and tied uses sum without extra buffers.
 * Activation gradients (dIn, dq, dGate, dLogits, ...) are <b>overwritten</b> ({@code =}). The one
 * exception is the residual stream, whose gradient is summed explicitly with {@link #accumulate}.
 * A {@code null} activation-gradient argument means "not needed" where the Javadoc says so.
 *
 * <h2>Determinism</h2>
 * The same inputs on the same backend (same thread count, same device) give bit-identical outputs.
 * Reductions have a fixed order; no result depends on thread scheduling.
 *
 * <h2>Precision</h2>
 * Ops accumulate in fp32 (or wider). An op's <em>activation</em> operands (inputs and outputs
 * between layers, their gradients, and the compute weights they are multiplied with: the
 * {@link #computeType()} a model uses; its Javadoc lists them after "Activations:") are all F32 or
 * all BF16, except where that Javadoc lets an output be F32 from BF16 operands; a BF16 result is
 * computed in fp32 and rounded once, to nearest even, as it is stored. Statistics (rstd, lse),
 * logits, log-probs, losses, parameter gradients (dWeight, dTable) and optimizer state are always
 * F32. An op whose Javadoc names no dtype takes F32 only. The CPU backend computes in F32
 * throughout (the reference) and refuses BF16 activations; {@link #cast} converts between the two
 * anywhere.
 *
 * <h2>Synchronisation</h2>
 * A device backend may run ops asynchronously. Ops, writes and uploads only queue work (the host
 * data is copied before they return); methods that return host values ({@link #read},
 * {@link #readInts}, {@link #readDoubles} and the defaults built on them) wait for the device, and
 * {@link #synchronize()} waits for all queued work. Statistics a step needs later (the SPIN loss's,
 * sums, the gradient norm) go into F64 tensors on the backend, so that a training step can read
 * them all at once. {@link #hostSynchronizations()} counts the waits.
 */
public interface Backend extends AutoCloseable {

    String name();

    /**
     * The dtype models on this backend keep activations and compute weights in: F32 on the CPU,
     * BF16 on a CUDA device unless it was opened for fp32 ({@link Devices#open}).
     */
    default DType computeType() {
        return DType.F32;
    }

    /** The compute dtypes this backend's activation ops take: F32 everywhere, BF16 on CUDA. */
    default java.util.Set<DType> computeTypes() {
        return java.util.Set.of(DType.F32);
    }

    // ---------------------------------------------------------------- memory

    /**
     * Bytes of the memory tensors are allocated from (the CPU: the machine's RAM, or its container's
     * limit), so that a model or cache that could never fit is refused by size before allocating.
     */
    long memoryBytes();

    /**
     * Bytes this backend's tensors occupy now and at most since it opened (or since the last
     * {@link #resetPeakMemory()}), where the backend counts them: a device's stream-ordered pool.
     * Empty where nothing counts them (the CPU's tensors come from the Java heap's neighbours).
     */
    default java.util.Optional<MemoryUsage> memoryUsage() {
        return java.util.Optional.empty();
    }

    /** Starts {@link #memoryUsage()}'s peak afresh from the current usage. */
    default void resetPeakMemory() {}

    /** Current and peak bytes of a backend's tensors. */
    record MemoryUsage(long currentBytes, long peakBytes) {}

    /**
     * Times the host has waited for this backend's device since it opened: a stream
     * synchronisation, a copy to the host, or an upload or allocation that had to wait for device
     * work. This is what DESIGN.md's "a training step syncs the host at most once when it does not
     * log" counts. Empty where ops run to completion on the calling thread (the CPU), so there is
     * nothing to wait for.
     */
    default java.util.OptionalLong hostSynchronizations() {
        return java.util.OptionalLong.empty();
    }

    /** A new tensor filled with zeros. */
    Tensor allocate(DType dtype, int... shape);

    /** A new F32 tensor holding {@code values}. */
    Tensor fromHost(float[] values, int... shape);

    /** A new I32 tensor holding {@code values}. */
    Tensor fromHost(int[] values, int... shape);

    /** Copies {@code values} (F32, or BF16 after rounding) into {@code dst}. */
    void write(Tensor dst, float[] values);

    /** Copies {@code values} into the I32 tensor {@code dst} of the same length (index tensors reused between steps). */
    void write(Tensor dst, int[] values);

    /**
     * Copies {@code dst.size()} little-endian elements of {@code storedType} (F32 or BF16) from
     * off-heap host memory, such as a mapped safetensors file, into the F32 or BF16 tensor
     * {@code dst}, widening or rounding on the backend: a checkpoint streams to a device in its
     * stored dtype, without a host fp32 copy of each weight. Rounding F32 into BF16 gives the bits
     * {@link #cast} gives.
     */
    void upload(Tensor dst, java.lang.foreign.MemorySegment stored, DType storedType);

    /** Copies {@code values} into the F64 tensor {@code dst} of the same length (statistics restored from a checkpoint). */
    void write(Tensor dst, double[] values);

    /** The elements of a F32 or BF16 tensor as floats. */
    float[] read(Tensor src);

    /** The elements of an I32 tensor. */
    int[] readInts(Tensor src);

    /** The elements of a F64 tensor: statistics the backend kept until the host asks. */
    double[] readDoubles(Tensor src);

    /** {@code dst = src} element by element; same dtype and size. */
    void copy(Tensor dst, Tensor src);

    /** Sets every element of a F32 tensor to {@code value}. */
    void fill(Tensor dst, float value);

    /** Waits until all queued work is done. */
    void synchronize();

    /**
     * A clock for the work this backend queues, for benchmarks (spin.bench): {@link WorkTimer#millis}
     * runs {@code work}, waits for what it queued and returns how long that took. The default is
     * host wall time from a synchronised start to a synchronised end; a device times its compute
     * stream with events, so queueing overhead and host jitter stay out of the figure.
     */
    default WorkTimer workTimer() {
        return work -> {
            synchronize();
            long start = System.nanoTime();
            work.run();
            synchronize();
            return (System.nanoTime() - start) / 1e6;
        };
    }

    /** See {@link #workTimer()}; closing it frees what it holds (a device's events). */
    interface WorkTimer extends AutoCloseable {
        /** Milliseconds the work queued by {@code work} took; waits for it. */
        double millis(Runnable work);

        @Override
        default void close() {}
    }

    @Override
    void close();

    // ---------------------------------------------------------------- element-wise

    /** out = a + b. Shapes equal; out may alias a or b. Activations: out, a, b. */
    void add(Tensor out, Tensor a, Tensor b);

    /** dst += src: sums residual-stream gradients and gradient micro-batches. Activations: dst, src. */
    void accumulate(Tensor dst, Tensor src);

    /** dst *= factor (gradient clipping, loss scaling); F32 (gradients). */
    void scale(Tensor dst, float factor);

    /**
     * Converts between F32 and BF16 (either direction, or same-type copy). F32 to BF16 rounds to
     * nearest-even and keeps NaN a NaN; BF16 to F32 is exact. The backward of a cast is a cast of
     * the gradient in the other direction.
     */
    void cast(Tensor out, Tensor in);

    // ---------------------------------------------------------------- embedding

    /**
     * out[N,C] = table[ids[n], :]. ids I32 [N] in [0, V). Also serves as a row gather.
     * Activations: out, table (the compute copy of the embedding).
     */
    void embeddingForward(Tensor out, Tensor ids, Tensor table);

    /** dTable[V,C] (F32) += scatter of dOut[N,C] rows by ids[N]. Activations: dOut. */
    void embeddingBackward(Tensor dTable, Tensor ids, Tensor dOut);

    // ---------------------------------------------------------------- linear layers

    /**
     * out[N,O] = in[N,I] · weight[O,I]^T (HF Linear layout, no bias). Activations: in, weight, and
     * out, which may also be F32 where they are BF16 (the lm_head's fp32 logits from bf16 operands).
     */
    void matmulForward(Tensor out, Tensor in, Tensor weight);

    /**
     * Promises that the F32 matrices {@code weights} keep their values until the returned handle
     * is closed, so that {@link #matmulForward} may use a prepared copy of them meanwhile. The CPU
     * backend packs a frozen weight into its GEMM layout on its first product instead of on every
     * product of 12 or more rows (a second copy of that weight, held until the last freeze covering
     * it closes), and then multiplies every number of rows by its packed kernel: a row's result has
     * the same bits whatever the number of rows in the product (not so for unfrozen products,
     * which sum fewer than 12 rows in another order), and the same bits as an unfrozen product of
     * 12 or more rows. Freezes may nest and overlap. Changing a frozen weight is a caller error
     * that {@link FrozenWeights#close()} reports. The default prepares nothing.
     */
    default FrozenWeights freezeWeights(List<Tensor> weights) {
        return FrozenWeights.NONE;
    }

    /**
     * dIn[N,I] = dOut[N,O] · weight[O,I] (skipped when dIn is null);
     * dWeight[O,I] (F32) += dOut[N,O]^T · in[N,I]. Activations: dIn, dOut, in, weight.
     */
    void matmulBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight);

    // ---------------------------------------------------------------- normalisation

    /**
     * RMSNorm as HF Mistral: out[N,C] = in * rsqrt(mean(in^2) + eps) * weight[C].
     * Saves rstd[N] = rsqrt(mean(in^2) + eps) (F32) for the backward. Activations: out, in, weight.
     */
    void rmsnormForward(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps);

    /**
     * The residual add and the RMSNorm after it in one pass: {@code sum = a + b}, rounded to sum's
     * dtype exactly as {@link #add} stores it, then {@code normed}/{@code rstd} as
     * {@link #rmsnormForward} of that rounded sum. Bit for bit {@code add(sum, a, b)} followed by
     * {@code rmsnormForward(normed, rstd, sum, weight, eps)} on every backend. Shapes: sum, normed, a, b
     * [N,C], weight [C], rstd [N] (F32). sum may alias a or b; normed aliases none of them.
     * Activations: sum, normed, a, b, weight.
     */
    void addRmsnormForward(Tensor sum, Tensor normed, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps);

    /** dIn[N,C] = d/d in; dWeight[C] (F32) += d/d weight. Activations: dIn, dOut, in, weight. */
    void rmsnormBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd);

    // ---------------------------------------------------------------- rotary embedding

    /**
     * Rotary position embedding with rotate-half pairing (element i with i + D/2), as HF Llama/Mistral:
     * angle(p, i) = p * theta^(-2i/D) computed in fp32, out = in*cos + rotate_half(in)*sin.
     * in, out [B,T,H,D] (H any head count); positions I32 [B,T]. out may alias in.
     * Activations: out, in.
     */
    void ropeForward(Tensor out, Tensor in, Tensor positions, float theta);

    /** dIn[B,T,H,D] = rotation of dOut by the negative angle. dIn may alias dOut. Activations: dIn, dOut. */
    void ropeBackward(Tensor dIn, Tensor dOut, Tensor positions, float theta);

    /**
     * RoPE fused with the split of the stacked q/k/v projection (one product by the adjacent q, k
     * and v weights, {@link spin.model.ParameterView#stacked}). qkv [B*T, (H + 2 KVH) * D] (any
     * shape of that size) holds each row's H query heads, then its KVH key heads, then its KVH value
     * heads; q [B,T,H,D] and k [B,T,KVH,D] receive their heads rotated and v [B,T,KVH,D] its heads
     * as they are, in one pass that computes each position's angles once. Bit for bit: the three
     * parts copied out, then {@code ropeForward(q, q, ...)} and {@code ropeForward(k, k, ...)}. No
     * tensor may overlap another. Activations: q, k, v, qkv.
     */
    void qkvRopeForward(Tensor q, Tensor k, Tensor v, Tensor qkv, Tensor positions, float theta);

    /**
     * Its backward: each dqkv row becomes [dq rotated back | dk rotated back | dv], bit for bit
     * {@link #ropeBackward} of dq and of dk copied in beside dv. dq, dk and dv are only read; no
     * tensor may overlap another. Activations: dqkv, dq, dk, dv.
     */
    void qkvRopeBackward(Tensor dqkv, Tensor dq, Tensor dk, Tensor dv, Tensor positions, float theta);

    // ---------------------------------------------------------------- attention

    /**
     * Causal grouped-query attention with a sliding window and a per-key mask, softmax scale 1/sqrt(D).
     * Query head h reads key/value head h / (H/KVH). Query i of a sequence sees key j when
     * {@code j <= i}, {@code keyMask[b,j] != 0} and, if {@code window > 0}, {@code j > i - window}
     * (exactly {@code window} positions including itself: HF's sliding_window_overlay). A query that
     * sees no key gets a zero output and lse = -inf. Activations: out, q, k, v; the scores, the
     * softmax and every sum are fp32.
     *
     * @param out [B,T,H,D]
     * @param lse F32 [B,H,T] log-sum-exp of the scaled scores, saved for the backward
     * @param q [B,T,H,D], after RoPE
     * @param k [B,T,KVH,D], after RoPE
     * @param v [B,T,KVH,D]
     * @param keyMask I32 [B,T]; 0 excludes the key
     * @param window sliding window length, 0 for none
     */
    void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window);

    /**
     * dq[B,T,H,D], dk[B,T,KVH,D], dv[B,T,KVH,D] (all overwritten) from dOut[B,T,H,D] and the
     * forward's out and lse (F32). The softmax gradient's row term dOut . out is taken over the out
     * given, so in BF16 the forward's rounding of out reaches the gradients (as in FlashAttention).
     * Activations: dq, dk, dv, dOut, q, k, v, out.
     */
    void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
            Tensor keyMask, Tensor out, Tensor lse, int window);

    /**
     * Attention of new tokens over a paged key/value cache (decoding; no backward). The cache holds
     * only real tokens, so there is no key mask: token m (of sequence {@code querySeq[m]}, at position
     * {@code queryPos[m]}) sees that sequence's cached positions p with {@code p <= queryPos[m]} and,
     * if {@code window > 0}, {@code p > queryPos[m] - window}. Position p of sequence s lives in cache
     * row {@code blockTable[s, p / blockSize] * blockSize + p % blockSize}. Keys and values of the new
     * tokens must already be in the cache ({@link #scatterRows}). Activations: out, q, kCache, vCache.
     *
     * @param out [M,H,D]
     * @param q [M,H,D], after RoPE
     * @param kCache [R,KVH,D] (R = blocks * blockSize)
     * @param vCache [R,KVH,D]
     * @param blockTable I32 [S, maxBlocks]
     * @param querySeq I32 [M], row of blockTable for each token
     * @param queryPos I32 [M]
     */
    void attentionCachedForward(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable, Tensor querySeq,
            Tensor queryPos, int blockSize, int window);

    /**
     * dst[rows[m], :] = src[m, :] for dst [R,W], src [M,W], rows I32 [M] (distinct). Activations:
     * dst, src (copied as they are, bit for bit).
     */
    void scatterRows(Tensor dst, Tensor src, Tensor rows);

    // ---------------------------------------------------------------- MLP

    /** out[N,F] = silu(gate[N,F]) * up[N,F]. Activations: out, gate, up. */
    void swigluForward(Tensor out, Tensor gate, Tensor up);

    /** dGate[N,F], dUp[N,F] from dOut[N,F]. Activations: dGate, dUp, dOut, gate, up. */
    void swigluBackward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up);

    // ---------------------------------------------------------------- sampling

    /**
     * Greedy choice: out[s] = the first index of the largest value of row s of logits [S,V] (as
     * torch.argmax; a row of -inf gives 0), or -1 where the row holds a NaN. out I32 [S]. Decoding
     * then reads S ids back instead of S rows of logits.
     */
    void argmaxRows(Tensor out, Tensor logits);

    /**
     * Chooses the next token of each row of logits [S,V] under {@code rule}, in double precision and
     * HF's order, and writes its id to out I32 [S]; decoding then reads S ids back instead of S rows
     * of logits. For row s:
     * <ol>
     * <li>score[v] = logits[s,v]. With a repetition penalty p (HF's RepetitionPenaltyLogitsProcessor),
     * each distinct id t among the first {@code historyLengths[s]} entries of history row s is
     * penalised once: score[t] = logit / p where the logit is >= 0, logit * p where it is negative.
     * <li>A row holding a NaN logit gives -1. Greedy decoding (temperature 0), and a row whose largest
     * score is infinite (a +inf, or every score -inf), give the first index of the largest score.
     * <li>Top-k ({@code 0 < topK < V}) keeps the scores >= the topK-th largest (ties with it kept).
     * A kept token weighs exp((score - max) * (1 / temperature)), the maximum itself 1 (so that a
     * temperature whose reciprocal overflows still samples among the maxima); the others weigh 0.
     * <li>Top-p ({@code topP < 1}, HF's TopPLogitsWarper) ranks the tokens by weight rounded to
     * float, descending, ties by id ascending; a token survives when the tokens ranked before it
     * weigh less than topP times the kept weight. Tokens weighing at most (1 - topP) / V of the kept
     * weight are dropped first: together they weigh at most 1 - topP of it and are ranked last, so
     * the rule drops them (to float rounding of the ranking).
     * <li>The draw: u = {@link SplitMix64#uniform}(stream of row s, draws[s]) times the surviving
     * weight; out[s] = the first id, in id order, at which the running sum of surviving weights
     * exceeds u.
     * </ol>
     * Row s depends only on its own logits, history, stream and draw number: its token is the same
     * whatever other rows share the call, and a request drawing number n of its own stream at its
     * n-th sampled token samples as one {@code SplitMix64} generator of its own would.
     *
     * <p>The CPU backend sums weights in id order (the kept weight of top-p in rank order) and uses
     * {@link Math#exp}; a device sums in another fixed order and its exp may differ by an ulp. A
     * device therefore chooses the CPU's token except where u, or the top-p cut, lies within
     * rounding (about 1e-15 of the row's weight) of a boundary between two tokens, which a row of
     * random logits hits with a probability of about 1e-14.
     *
     * @param streams I32 [S,2]: each row's stream ({@link SplitMix64#stream}), low 32 bits then
     *     high; may be null when greedy
     * @param draws I32 [S]: the number of the draw each row takes from its stream (how many it took
     *     before); may be null when greedy
     * @param history I32 [S,L]: each row's sequence so far (prompt and generated ids, in [0, V));
     *     may be null without a penalty
     * @param historyLengths I32 [S], in [0, L]: how many entries of each history row count; may be
     *     null without a penalty. Ids or lengths out of range are caller errors: the CPU backend
     *     throws, a device skips such ids and clamps such lengths (it never reads outside the tensors)
     */
    void sampleRows(Tensor out, Tensor logits, SamplingRule rule, Tensor streams, Tensor draws, Tensor history,
            Tensor historyLengths);

    // ---------------------------------------------------------------- log-probs and losses

    /** Label value whose position contributes nothing (HF's ignore_index). */
    int IGNORE_INDEX = -100;

    /**
     * Fused log-softmax gather: logp[N] = logits[n, labels[n]] - logsumexp(logits[n, :]), or 0 where
     * labels[n] == IGNORE_INDEX. Saves lse[N]. Never materialises the [N,V] log-softmax.
     * labels I32 [N] in [0, V) or IGNORE_INDEX. logits, logp and lse are F32 (logits upcast, as HF).
     */
    void logprobForward(Tensor logp, Tensor lse, Tensor logits, Tensor labels);

    /**
     * dLogits[N,V] = dLogp[n] * (onehot(labels[n]) - softmax(logits[n])); rows with ignored labels get 0.
     * logits, dLogp and lse are F32. Activations: dLogits, which feeds the lm_head's backward
     * product: an F32 dLogits may alias logits (the model overwrites its logits in place to save a
     * [N,V] buffer); a BF16 one is a buffer of its own.
     */
    void logprobBackward(Tensor dLogits, Tensor dLogp, Tensor logits, Tensor labels, Tensor lse);

    /** out[B] = sum over t of in[B,T] (per-sequence sum of token log-probs). */
    void rowSumForward(Tensor out, Tensor in);

    /** dIn[B,T] = dOut[B] broadcast over T. */
    void rowSumBackward(Tensor dIn, Tensor dOut);

    /**
     * SPIN loss on per-sequence summed log-probs, all F32 [B]:
     * logits = (policyReal - policyGenerated) - (opponentReal - opponentGenerated),
     * loss = mean(-logsigmoid(beta * logits)) or mean(relu(1 - beta * logits)). Writes
     * stats F64 [{@link SpinLossStats#COUNT}]: the loss and the reference's metrics in
     * {@link SpinLossStats}'s order, each summed in double in increasing b. They stay on the
     * backend (a training step reads them when it logs); {@code SpinLossStats.of(readDoubles(stats))}
     * is the host view.
     */
    void spinLossForward(Tensor stats, Tensor policyReal, Tensor policyGenerated, Tensor opponentReal,
            Tensor opponentGenerated, float beta, SpinLossType type);

    /**
     * dPolicyReal[B], dPolicyGenerated[B] (overwritten) = lossScale * d(loss)/d(policy logps).
     * lossScale is 1 for a plain step and 1/accumulationSteps under gradient accumulation.
     */
    void spinLossBackward(Tensor dPolicyReal, Tensor dPolicyGenerated, Tensor policyReal, Tensor policyGenerated,
            Tensor opponentReal, Tensor opponentGenerated, float beta, SpinLossType type, float lossScale);

    // ---------------------------------------------------------------- optimizers

    /**
     * One {@code torch.optim.RMSprop} step (not centered, no momentum) on F32 tensors of equal size,
     * in place, with torch's float32 arithmetic:
     * {@code g = grad + weightDecay * param; squareAvg = alpha * squareAvg + (1 - alpha) * g * g;
     * param -= lr * g / (sqrt(squareAvg) + eps)}.
     */
    default void rmspropStep(Tensor param, Tensor grad, Tensor squareAvg, float lr, float alpha, float eps,
            float weightDecay) {
        rmspropStep(param, grad, squareAvg, null, StepGradient.AS_IS, lr, alpha, eps, weightDecay);
    }

    /**
     * {@link #rmspropStep(Tensor, Tensor, Tensor, float, float, float, float)} fused with what is
     * done around it, in the same pass: the updated parameter, rounded to nearest-even as
     * {@link #cast} rounds it, is also written into {@code computeCopy} (BF16, param's size; null
     * for none): bit for bit the step followed by {@code cast(computeCopy, param)}, without reading
     * the master back; and the gradient is taken as {@code gradient} says (its clipping scale
     * applied, and zeroed after use: bit for bit {@code scale(grad, factor)} before the step and
     * {@code fill(grad, 0f)} after it, without their passes).
     */
    void rmspropStep(Tensor param, Tensor grad, Tensor squareAvg, Tensor computeCopy, StepGradient gradient, float lr,
            float alpha, float eps, float weightDecay);

    /**
     * One {@code torch.optim.AdamW} step on F32 tensors of equal size, in place, {@code step} being
     * the 1-based count of steps including this one:
     * {@code param *= 1 - lr * weightDecay; expAvg += (1 - beta1) * (grad - expAvg);
     * expAvgSq = beta2 * expAvgSq + (1 - beta2) * grad * grad;
     * param -= lr / (1 - beta1^step) * expAvg / (sqrt(expAvgSq) / sqrt(1 - beta2^step) + eps)}.
     */
    default void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, float lr, float beta1,
            float beta2, float eps, float weightDecay, long step) {
        adamwStep(param, grad, expAvg, expAvgSq, null, StepGradient.AS_IS, lr, beta1, beta2, eps, weightDecay, step);
    }

    /**
     * {@link #adamwStep(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, long)} fused
     * with the compute copy and the gradient's scale and zeroing in the same pass, as
     * {@link #rmspropStep(Tensor, Tensor, Tensor, Tensor, StepGradient, float, float, float, float)}
     * describes.
     */
    void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, Tensor computeCopy, StepGradient gradient,
            float lr, float beta1, float beta2, float eps, float weightDecay, long step);

    // ---------------------------------------------------------------- reductions

    /**
     * out F64 [1] = (sum of all elements of the F32 tensor {@code in}, accumulated in double in a
     * fixed order) / {@code divisor}, the division rounded once: a mean over {@code divisor}
     * elements, or with divisor 1 the sum itself. Stays on the backend. An empty {@code in} gives
     * 0 / divisor.
     */
    void sum(Tensor out, Tensor in, double divisor);

    /** Sum of all elements of a F32 tensor, accumulated in double in a fixed order: {@link #sum(Tensor, Tensor, double)}, read. */
    default double sum(Tensor in) {
        try (Tensor out = allocate(DType.F64, 1)) {
            sum(out, in, 1);
            return readDoubles(out)[0];
        }
    }

    /** Sum of squares of all elements of a F32 tensor, accumulated in double in a fixed order. */
    double sumOfSquares(Tensor in);

    /**
     * {@code sums[i] = sums[i] + values[i] * weight} for F64 tensors of equal size, the product and
     * the sum each rounded once (Java's double arithmetic, never a fused multiply-add): weighted
     * running sums, such as a logging interval's metrics, kept on the backend.
     */
    void accumulateWeighted(Tensor sums, Tensor values, double weight);

    /**
     * Whether every element of a F32 tensor is finite: one reduction, one host value. Exact through
     * {@link #sum}: a NaN or an infinity makes the double sum NaN or infinite, and finite floats
     * (|x| < 3.5e38) cannot overflow a double sum of fewer than 2^53 terms.
     */
    default boolean allFinite(Tensor in) {
        return Double.isFinite(sum(in));
    }

    /**
     * torch's {@code clip_grad_norm_} on a (flat) F32 gradient tensor: norm F64 [1] = the pre-clip
     * norm sqrt(sum of squares), and, when {@code maxNorm > 0} and the factor
     * {@code maxNorm / (norm + 1e-6)} (in double) is below 1, {@code grads *= (float) factor}. The
     * norm stays on the backend (a training step reads it with its other checks, in one read); a
     * device computes the factor and scales on the device, so clipping makes the host wait for
     * nothing. A non-finite norm is written, not thrown (the gradients are then not finite either).
     */
    default void clipGradNorm(Tensor norm, Tensor grads, double maxNorm) {
        try (Tensor squares = allocate(DType.F64, 1)) {
            sumOfSquares(squares, grads);
            clipGradNorm(norm, grads, squares, maxNorm);
        }
    }

    /**
     * out F64 [1] = the sum of squares of all elements of the F32 tensor {@code in}, accumulated in
     * double in {@link #sumOfSquares(Tensor)}'s order; stays on the backend (the sum {@link #clipFactor}
     * takes; a ZeRO-3 rank's shard sum is all-reduced into the global one first).
     */
    default void sumOfSquares(Tensor out, Tensor in) {
        write(out, new double[] {sumOfSquares(in)});
    }

    /**
     * {@link #clipGradNorm(Tensor, Tensor, double)} given the sum of squares, F64 [1] on the
     * backend, of the gradients it is the norm of (all of a model's, of which {@code grads} may be
     * one rank's shard): norm = sqrt(sumOfSquares), and {@code grads} scaled as clipping says.
     */
    default void clipGradNorm(Tensor norm, Tensor grads, Tensor sumOfSquares, double maxNorm) {
        try (Tensor factor = allocate(DType.F32, 1)) {
            clipFactor(norm, factor, sumOfSquares, maxNorm);
            float value = read(factor)[0];
            // A factor of exactly 1 is no clipping: scaling by it would change no bits.
            if (value != 1f) {
                scale(grads, value);
            }
        }
    }

    /**
     * clip_grad_norm_'s norm and factor without applying the factor (an optimizer step applies it in
     * its own pass: {@link StepGradient}): norm F64 [1] = sqrt(sumOfSquares) (F64 [1], the sum of
     * squares of all of a model's gradients), factor F32 [1] = {@code (float) (maxNorm / (norm + 1e-6))}
     * (in double, rounded once) when {@code maxNorm > 0} and that is below 1, else exactly 1.
     * {@link #clipGradNorm(Tensor, Tensor, Tensor, double)} is this followed by
     * {@code grads *= factor}, bit for bit on every backend. Both stay on the backend. A non-finite
     * norm is written, not thrown; the factor is then the one this backend's clipGradNorm would
     * apply (1 here; a device may write NaN or 0), which no caller should use: the step diverged.
     */
    default void clipFactor(Tensor norm, Tensor factor, Tensor sumOfSquares, double maxNorm) {
        double value = Math.sqrt(readDoubles(sumOfSquares)[0]);
        float coefficient = 1f;
        if (maxNorm > 0 && Double.isFinite(value) && maxNorm / (value + 1e-6) < 1) {
            coefficient = (float) (maxNorm / (value + 1e-6));
        }
        write(factor, new float[] {coefficient});
        write(norm, new double[] {value});
    }

    /** sqrt(sum of squares over every tensor): the global gradient norm used for clipping. */
    default double globalNorm(List<Tensor> tensors) {
        double total = 0;
        for (Tensor t : tensors) {
            total += sumOfSquares(t);
        }
        return Math.sqrt(total);
    }
}
