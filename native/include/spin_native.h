/*
 * spin_native: the one C ABI that the Java engine binds through Panama (java/spin/nativebind).
 *
 * Conventions for every entry point:
 *   - returns an int status: SPIN_OK (0) or one of the SPIN_ERR_* codes below;
 *   - on failure, spin_last_error() holds a description (the failing call, and for CUDA errors the
 *     error name and message) for the calling thread until its next failure;
 *   - results come back through pointer arguments; nothing here ever exits or aborts the process;
 *   - work taking a spin_stream_t is queued on that stream and may still be running on return;
 *     a NULL stream means CUDA's legacy default stream.
 * Device pointers are plain addresses from spin_malloc.
 */
#ifndef SPIN_NATIVE_H
#define SPIN_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPIN_EXPORT __attribute__((visibility("default")))

/* Bumped whenever an entry point or struct below changes, so Java refuses a stale library. */
#define SPIN_ABI_VERSION 7

enum spin_status {
    SPIN_OK = 0,
    SPIN_ERR_INVALID_ARG = 1,
    /* CUDA cannot be used on this machine at all: no driver, a driver older than the runtime,
       a stub driver, or no device. Callers treat this as "no GPU", not as a fault. */
    SPIN_ERR_NO_DEVICE = 2,
    SPIN_ERR_OUT_OF_MEMORY = 3,
    SPIN_ERR_CUDA = 4
};

enum spin_memcpy_kind {
    SPIN_MEMCPY_HOST_TO_DEVICE = 1,
    SPIN_MEMCPY_DEVICE_TO_HOST = 2,
    SPIN_MEMCPY_DEVICE_TO_DEVICE = 3
};

/*
 * Element type of an op's floating activation operands (its "compute dtype"; kernels/dtype.cuh).
 * Every op that takes one says which operands it covers; statistics (rstd, lse), losses, parameter
 * gradients and optimizer state stay fp32 whatever it is. bf16 travels as raw 16-bit patterns and
 * every kernel accumulates in fp32, rounding once when it stores a bf16 result.
 */
enum spin_dtype {
    SPIN_DTYPE_F32 = 0,
    SPIN_DTYPE_BF16 = 1
};

typedef struct spin_stream_s* spin_stream_t;
typedef struct spin_event_s* spin_event_t;

#define SPIN_DEVICE_NAME_BYTES 256
#define SPIN_LAST_ERROR_BYTES 1024

typedef struct spin_device_props {
    char name[SPIN_DEVICE_NAME_BYTES]; /* NUL-terminated */
    size_t total_memory_bytes;
    size_t free_memory_bytes;
    int compute_major;
    int compute_minor;
    int multiprocessor_count;
} spin_device_props;

/* ---- errors and versions ---------------------------------------------------------------- */

/* Text of this thread's most recent failure; at most SPIN_LAST_ERROR_BYTES including the NUL. */
SPIN_EXPORT const char* spin_last_error(void);
SPIN_EXPORT int spin_abi_version(void);
/* CUDA versions as 1000 * major + 10 * minor; the driver version is 0 when no driver is installed. */
SPIN_EXPORT int spin_driver_version(int* out);
SPIN_EXPORT int spin_runtime_version(int* out);

/* ---- devices ---------------------------------------------------------------------------- */

/* SPIN_ERR_NO_DEVICE (not a zero count) when CUDA is unusable, with the reason in spin_last_error. */
SPIN_EXPORT int spin_device_count(int* out);
/* Also reports free memory, which makes the device's primary context current on this thread. */
SPIN_EXPORT int spin_device_properties(int device, spin_device_props* out);
/* Makes `device` current on the calling thread: later streams, pool allocations and launches from
   this thread use it. */
SPIN_EXPORT int spin_set_device(int device);

/* ---- streams ---------------------------------------------------------------------------- */

/* A stream that does not synchronise with the legacy default stream. */
SPIN_EXPORT int spin_stream_create(spin_stream_t* out);
SPIN_EXPORT int spin_stream_destroy(spin_stream_t stream);
SPIN_EXPORT int spin_stream_synchronize(spin_stream_t stream);

/* ---- memory ----------------------------------------------------------------------------- */

/* bytes == 0 gives NULL. */
SPIN_EXPORT int spin_malloc(void** out, size_t bytes);
/* NULL is accepted and ignored. */
SPIN_EXPORT int spin_free(void* pointer);
/* Queued on the stream. A host-to-device copy from page-locked memory (spin_host_alloc) returns
   at once and reads the host memory when the stream reaches it: keep that memory unchanged until
   an event recorded after the copy completes. From pageable memory CUDA has staged the source
   when it returns, which may mean waiting for the stream's earlier work. A device-to-host copy
   into pageable memory returns once the data has landed. */
SPIN_EXPORT int spin_memcpy(void* dst, const void* src, size_t bytes, int kind, spin_stream_t stream);
SPIN_EXPORT int spin_memset_zero(void* dst, size_t bytes, spin_stream_t stream);

/* Page-locked (pinned) host memory, which host-to-device copies read asynchronously (see
   spin_memcpy); bytes == 0 gives NULL. Allocating and freeing it may wait for the device: do it
   once, not per copy. */
SPIN_EXPORT int spin_host_alloc(void** out, size_t bytes);
/* NULL is accepted and ignored. */
SPIN_EXPORT int spin_host_free(void* pointer);

/* ---- stream-ordered memory pool and events (native/spin_native.cu) ------------------------ */

/* Memory from the current device's default pool (cudaMallocAsync), usable by work queued on
   `stream` after this call; bytes == 0 gives NULL. The pool keeps freed memory for reuse, so a
   training step that allocates and frees the same sizes does not reach the driver. */
SPIN_EXPORT int spin_malloc_async(void** out, size_t bytes, spin_stream_t stream);
/* Returns memory to the pool once the work queued on `stream` so far is done. NULL is ignored. */
SPIN_EXPORT int spin_free_async(void* pointer, spin_stream_t stream);
/* Bytes the pool's allocations use now and at most since the last reset. */
SPIN_EXPORT int spin_pool_usage(size_t* current_bytes, size_t* peak_bytes);
SPIN_EXPORT int spin_pool_reset_peak(void);
/* Gives the pool's unused reserve back to the driver, keeping `keep_bytes` (after an
   out-of-memory failure, before retrying). */
SPIN_EXPORT int spin_pool_trim(size_t keep_bytes);

/* Events order work between streams: record on one, wait on another. */
SPIN_EXPORT int spin_event_create(spin_event_t* out);
SPIN_EXPORT int spin_event_destroy(spin_event_t event);
SPIN_EXPORT int spin_event_record(spin_event_t event, spin_stream_t stream);
SPIN_EXPORT int spin_stream_wait_event(spin_stream_t stream, spin_event_t event);
/* *complete = 1 when the work recorded by the event has finished (or it was never recorded),
   0 when it is still running; never waits. */
SPIN_EXPORT int spin_event_query(spin_event_t event, int* complete);
/* Waits on the host until the work recorded by the event has finished. */
SPIN_EXPORT int spin_event_synchronize(spin_event_t event);
/* An event that also records when the device reached it, for timing work on a stream (the
   benchmarks): events of spin_event_create carry no time, which keeps ordering cheap. */
SPIN_EXPORT int spin_timing_event_create(spin_event_t* out);
/* *millis = the device time from `start` to `end`, both timing events recorded and complete
   (synchronize `end` first). The emulator reports host wall time between the two records. */
SPIN_EXPORT int spin_event_elapsed_ms(spin_event_t start, spin_event_t end, float* millis);

/*
 * Kernel conventions (every spin_* below that takes a stream):
 *   - the semantics, shapes and gradient rule are those of java/spin/backend/Backend.java, whose
 *     Javadoc names the same op; tensors are row-major and contiguous; floating tensors are fp32
 *     unless a dtype argument (enum spin_dtype) covers them or a name says bf16 (raw uint16_t bit
 *     patterns); ids, labels, positions are int32;
 *   - parameter gradients (dWeight, dTable) accumulate (+=), activation gradients are overwritten;
 *   - deterministic: the same inputs and shapes give the same bits on every run; no float atomics;
 *   - ids/labels/rows outside their range are not read through: such an embedding row gives NaN,
 *     such a label a NaN log-prob, such a scatter row is skipped (batches are validated when built,
 *     so these only make a caller's bug visible instead of reading out of bounds);
 *   - a zero-sized problem does nothing; NULL tensors and bad sizes return SPIN_ERR_INVALID_ARG.
 */

/* ---- kernels: element-wise (kernels/elementwise.cu) --------------------------------------- */

/*
 * out[i] = a[i] + b[i]; out may alias a or b (dst += src is spin_add(dst, dst, src)). dtype
 * (enum spin_dtype) covers out, a and b. The scale and fill ops below are fp32 only.
 */
SPIN_EXPORT int spin_add(spin_stream_t stream, int dtype, void* out, const void* a, const void* b, size_t count);
/* dst[i] *= factor. */
SPIN_EXPORT int spin_scale(spin_stream_t stream, float* dst, float factor, size_t count);
/* dst[i] *= *factor, the factor read on the device (clipping without a host round trip). */
SPIN_EXPORT int spin_scale_by_device(spin_stream_t stream, float* dst, const float* factor, size_t count);
/* dst[i] = value. */
SPIN_EXPORT int spin_fill(spin_stream_t stream, float* dst, float value, size_t count);

/* ---- kernels: embedding (kernels/embedding.cu) -------------------------------------------- */

/* out[N,C] = table[ids[n], :] for table [V,C]; dtype (enum spin_dtype) covers out and table. */
SPIN_EXPORT int spin_embedding_forward(spin_stream_t stream, int dtype, void* out, const int32_t* ids,
                                       const void* table, int N, int C, int V);
/* dTable[V,C] (fp32) += dOut[N,C] rows: each row, widened to fp32, added onto dTable[ids[n]] one by one in
   increasing n, as the CPU backend does (no atomics); dtype covers dOut. */
SPIN_EXPORT int spin_embedding_backward(spin_stream_t stream, int dtype, float* dTable, const int32_t* ids,
                                        const void* dOut, int N, int C, int V);

/* ---- kernels: rotary embedding (kernels/rope.cu) ------------------------------------------- */

/* in, out [B,T,H,D] (out may alias in), positions [B,T]; rotate-half pairing, angle
   p * theta^(-2i/D) rounded at the steps java/spin/backend/cpu/Rope.java rounds at. D even.
   dtype (enum spin_dtype) covers in and out. */
SPIN_EXPORT int spin_rope_forward(spin_stream_t stream, int dtype, void* out, const void* in,
                                  const int32_t* positions, int B, int T, int H, int D, float theta);
/* dIn = dOut rotated by the negative angle; dIn may alias dOut; dtype covers both. */
SPIN_EXPORT int spin_rope_backward(spin_stream_t stream, int dtype, void* dIn, const void* dOut,
                                   const int32_t* positions, int B, int T, int H, int D, float theta);
/* RoPE fused with the split of the stacked q/k/v projection (one product by the adjacent q, k and v
   weights): qkv [B,T,(H+2KVH)*D] holds each row's H query heads, then its KVH key heads, then its KVH
   value heads. q [B,T,H,D] and k [B,T,KVH,D] receive their heads rotated, bit for bit as
   spin_rope_forward rotates them, and v [B,T,KVH,D] its heads as they are, all in one launch. No
   tensor may overlap another. dtype covers every tensor, here and in the backward. */
SPIN_EXPORT int spin_qkv_rope_forward(spin_stream_t stream, int dtype, void* q, void* k, void* v, const void* qkv,
                                      const int32_t* positions, int B, int T, int H, int KVH, int D, float theta);
/* Its backward: each dqkv row becomes [dq rotated back | dk rotated back | dv], the rotations bit for
   bit those of spin_rope_backward. */
SPIN_EXPORT int spin_qkv_rope_backward(spin_stream_t stream, int dtype, void* dqkv, const void* dq, const void* dk,
                                       const void* dv, const int32_t* positions, int B, int T, int H, int KVH, int D,
                                       float theta);

/* ---- kernels: SwiGLU (kernels/swiglu.cu) -------------------------------------------------- */

/* out = silu(gate) * up, all [count]; dtype (enum spin_dtype) covers every operand, here and in the
   backward. */
SPIN_EXPORT int spin_swiglu_forward(spin_stream_t stream, int dtype, void* out, const void* gate, const void* up,
                                    size_t count);
SPIN_EXPORT int spin_swiglu_backward(spin_stream_t stream, int dtype, void* dGate, void* dUp, const void* dOut,
                                     const void* gate, const void* up, size_t count);

/* ---- kernels: log-probs (kernels/logprob.cu) ----------------------------------------------- */

/* logp[N] = logits[n, labels[n]] - lse[n], lse[N] = logsumexp(logits[n,:]); logp = 0 where
   labels[n] == -100. logits [N,V]. */
SPIN_EXPORT int spin_logprob_forward(spin_stream_t stream, float* logp, float* lse, const float* logits,
                                     const int32_t* labels, int N, int V);
/* dLogits[N,V] = dLogp[n] * (onehot(labels[n]) - softmax(logits[n])), 0 on ignored rows. dtype
   (enum spin_dtype) covers dLogits only: logits, dLogp and lse are fp32. An fp32 dLogits may alias
   logits; a bf16 dLogits overlapping them is SPIN_ERR_INVALID_ARG. */
SPIN_EXPORT int spin_logprob_backward(spin_stream_t stream, int dtype, void* dLogits, const float* dLogp,
                                      const float* logits, const int32_t* labels, const float* lse, int N, int V);

/* ---- kernels: sequence sums and the SPIN loss (kernels/spin_loss.cu) ----------------------- */

/* out[B] = sum over t of in[B,T], in increasing t. */
SPIN_EXPORT int spin_row_sum_forward(spin_stream_t stream, float* out, const float* in, int B, int T);
/* dIn[B,T] = dOut[b]. */
SPIN_EXPORT int spin_row_sum_backward(spin_stream_t stream, float* dIn, const float* dOut, int B, int T);

#define SPIN_LOSS_SIGMOID 0
#define SPIN_LOSS_HINGE 1
/* Doubles written by spin_spin_loss_forward, in this order (spin.backend.SpinLossStats). */
#define SPIN_LOSS_STATS 7

/* stats[7] (fp64, device) = loss, rewards/real, rewards/generated, rewards/accuracy,
   rewards/margin, logps/real, logps/generated over the B pairs, summed in double in increasing b,
   as java/spin/backend/cpu/SpinLoss.java. Inputs fp32 [B]. */
SPIN_EXPORT int spin_spin_loss_forward(spin_stream_t stream, double* stats, const float* policyReal,
                                       const float* policyGenerated, const float* opponentReal,
                                       const float* opponentGenerated, int B, float beta, int type);
/* dPolicyReal[B] = lossScale * d loss / d policyReal (computed in double, rounded once);
   dPolicyGenerated = -dPolicyReal. */
SPIN_EXPORT int spin_spin_loss_backward(spin_stream_t stream, float* dPolicyReal, float* dPolicyGenerated,
                                        const float* policyReal, const float* policyGenerated,
                                        const float* opponentReal, const float* opponentGenerated, int B,
                                        float beta, int type, float lossScale);

/* ---- kernels: reductions (kernels/reduce.cu) ----------------------------------------------- */

/* Bytes of device scratch spin_sum needs for `count` elements. */
SPIN_EXPORT int spin_sum_scratch_bytes(size_t count, size_t* out);
/* *out (fp64, device) = (sum of in[i]) / divisor (squares = 0) or (sum of in[i]^2) / divisor
   (squares = 1), accumulated in double in an order that depends on count only, the division
   rounded once (divisor 1: the plain sum). A NaN or infinity makes the sum non-finite. count 0
   gives 0 / divisor and needs neither scratch nor in. */
SPIN_EXPORT int spin_sum(spin_stream_t stream, double* out, void* scratch, const float* in, size_t count, int squares,
                         double divisor);
/* *scale (fp32, device) = min(1, maxNorm / (sqrt(*sumOfSquares) + 1e-6)), torch's
   clip_grad_norm_ factor (maxNorm > 0); *norm (fp64, device) = sqrt(*sumOfSquares). Either
   output may be NULL, not both: NULL scale computes the norm only, and maxNorm is then ignored.
   maxNorm is a double, as Java's clipping limit is, so the factor is Backend.clipFactor's. */
SPIN_EXPORT int spin_clip_scale(spin_stream_t stream, float* scale, double* norm, const double* sumOfSquares,
                                double maxNorm);
/* sums[i] = sums[i] + values[i] * weight for fp64 [count] on the device, the product and the sum
   each rounded once (no fused multiply-add), as Java's double arithmetic: running weighted sums
   of metrics that stay on the device. */
SPIN_EXPORT int spin_accumulate_weighted(spin_stream_t stream, double* sums, const double* values, double weight,
                                         size_t count);

/* ---- kernels: optimizers (kernels/optimizer.cu) -------------------------------------------- */

/* torch.optim.RMSprop (not centered, no momentum) on fp32 [count], in the float operation order of
   java/spin/backend/cpu/OptimizerMath.java. computeCopy (bf16, may be NULL) receives the new
   parameters rounded to bf16 in the same pass. gradScale (fp32 [1] on the device, may be NULL:
   none) multiplies each grad element, rounded once, before the step uses it (clipping's factor,
   spin_clip_scale's scale); zeroGrad (0 or 1) leaves grad = +0 after the step has read it. */
SPIN_EXPORT int spin_rmsprop_step(spin_stream_t stream, float* param, float* grad, const float* gradScale,
                                  int zeroGrad, float* squareAvg, uint16_t* computeCopy, size_t count, float lr,
                                  float alpha, float eps, float weightDecay);
/* torch.optim.AdamW; stepSize = lr / (1 - beta1^step) and correction2Sqrt = sqrt(1 - beta2^step)
   come from the caller (computed in double, rounded to float, as OptimizerMath does). gradScale,
   zeroGrad and computeCopy as spin_rmsprop_step's. */
SPIN_EXPORT int spin_adamw_step(spin_stream_t stream, float* param, float* grad, const float* gradScale,
                                int zeroGrad, float* expAvg, float* expAvgSq, uint16_t* computeCopy, size_t count,
                                float lr, float beta1, float beta2, float eps, float weightDecay, float stepSize,
                                float correction2Sqrt);

/* ---- kernels: row scatter for the KV cache (kernels/scatter.cu) ---------------------------- */

/* dst[rows[m], :] = src[m, :] for dst [R,W], src [M,W]; rows outside [0, R) are skipped, and a row
   named twice gets the later source row, as copies in increasing m would leave it. dtype (enum
   spin_dtype) covers dst and src, whose elements are copied as raw bits. */
SPIN_EXPORT int spin_scatter_rows(spin_stream_t stream, int dtype, void* dst, const void* src, const int32_t* rows,
                                  int M, int W, int R);

/* ---- kernels: sampling (kernels/sampling.cu) ---------------------------------------------- */

/* out[S] = the first index of the largest value of each row of logits [S,V] (torch.argmax; a row of
   -inf gives 0), or -1 where the row holds a NaN. */
SPIN_EXPORT int spin_argmax_rows(spin_stream_t stream, int32_t* out, const float* logits, int S, int V);
/* Bytes of device scratch spin_sample_rows needs for S rows of V logits. */
SPIN_EXPORT int spin_sample_rows_scratch_bytes(int S, int V, size_t* out);
/* out[S] = the token each row of logits [S,V] chooses under Backend.sampleRows'
   (java/spin/backend/Backend.java) rule: repetition penalty (history [S,L] int32 and
   historyLengths [S], read when repetitionPenalty != 1; ids outside [0,V) are skipped and lengths
   clamped to [0,L]), then greedy (temperature 0) or temperature, top-k (0 = off), top-p (1 = off)
   and a draw of u = SplitMix64 draw draws[s] of the stream streams[s] (int32 [S,2], low word first;
   both read when temperature > 0), in double; -1 for a row holding a NaN. Deterministic, each row
   independent of the others. */
SPIN_EXPORT int spin_sample_rows(spin_stream_t stream, int32_t* out, void* scratch, const float* logits, int S, int V,
                                 const int32_t* streams, const int32_t* draws, const int32_t* history,
                                 const int32_t* historyLengths, int L, double temperature, double topP, int topK,
                                 double repetitionPenalty);

/* ---- kernels: attention (kernels/attention.cu) --------------------------------------------- */

/* Causal GQA attention with sliding window and key mask, scale 1/sqrt(D), flash-style (tiled
   online softmax, no [T,T] buffer). out, q [B,T,H,D]; k, v [B,T,KVH,D]; keyMask [B,T];
   lse [B,H,T] (-inf and a zero output for a query that sees no key). window 0 = none. D even, 2..256.
   dtype (enum spin_dtype) covers out, q, k and v; lse is fp32, as are the scores, the softmax and
   every sum. */
SPIN_EXPORT int spin_attention_forward(spin_stream_t stream, int dtype, void* out, float* lse, const void* q,
                                       const void* k, const void* v, const int32_t* keyMask, int B, int T, int H,
                                       int KVH, int D, int window);
/* spin_attention_forward picks the tensor-core kernel (kernels/attention_mma.cu: mma.sync, P in bf16)
   for bf16 with D = 64 or 128 and q, k, v 16-byte aligned, and the simple kernel otherwise. The
   _simple entry always runs the simple kernel (fp32 scores, P and P.V; any dtype and D): the
   reference that tests hold the tensor-core kernel to. Same arguments, same outputs. */
SPIN_EXPORT int spin_attention_forward_simple(spin_stream_t stream, int dtype, void* out, float* lse, const void* q,
                                              const void* k, const void* v, const int32_t* keyMask, int B, int T,
                                              int H, int KVH, int D, int window);
SPIN_EXPORT int spin_attention_backward_scratch_bytes(int B, int T, int H, size_t* out);
/* dq [B,T,H,D], dk, dv [B,T,KVH,D], all overwritten; deterministic (dq and dk/dv in separate
   passes, each element summed by one thread in a fixed order). The softmax gradient's row term
   dOut . out is taken over the out given. dtype covers dq, dk, dv, dOut, q, k, v and out; lse and
   the scratch are fp32. */
SPIN_EXPORT int spin_attention_backward(spin_stream_t stream, int dtype, void* dq, void* dk, void* dv, void* scratch,
                                        const void* dOut, const void* q, const void* k, const void* v,
                                        const int32_t* keyMask, const void* out, const float* lse, int B, int T,
                                        int H, int KVH, int D, int window);
/* Decoding over the paged cache: out, q [M,H,D]; kCache, vCache [R,KVH,D]; blockTable
   [S,maxBlocks]; querySeq, queryPos [M]. A token whose sequence, position or any visible block is
   outside the table or the cache's R rows gets a NaN output row. dtype covers out, q, kCache and
   vCache. */
SPIN_EXPORT int spin_attention_cached_forward(spin_stream_t stream, int dtype, void* out, const void* q,
                                              const void* kCache, const void* vCache, const int32_t* blockTable,
                                              const int32_t* querySeq, const int32_t* queryPos, int M, int H, int KVH,
                                              int D, int R, int S, int maxBlocks, int blockSize, int window,
                                              int splits, void* scratch);
/* spin_attention_cached_forward runs one block per (token, kv head) over the token's whole GQA
   group, so each K/V row is read once per group; where tokens x kv heads are too few to fill the
   device it splits each token's visible positions into `splits` slices (flash-decoding) and merges
   them in slice order, so the result is deterministic for a given shape and split count. splits
   0 = the rule (from M, KVH, maxBlocks * blockSize, window and the device's SM count); > 0 forces
   that many (at most 64; for tests). scratch: spin_attention_cached_forward_scratch_bytes bytes
   for the same M, H, KVH, D, maxBlocks, blockSize, window and splits (NULL where that is 0).
   Group sizes whose tiles do not fit 96 KiB of shared memory (large H/KVH at large D) run the
   simple kernel. The _simple entry always runs the simple kernel (one block per token and query
   head): the reference tests hold the fast one to. */
SPIN_EXPORT int spin_attention_cached_forward_scratch_bytes(int M, int H, int KVH, int D, int maxBlocks, int blockSize,
                                                            int window, int splits, size_t* out);
SPIN_EXPORT int spin_attention_cached_forward_simple(spin_stream_t stream, int dtype, void* out, const void* q,
                                                     const void* kCache, const void* vCache,
                                                     const int32_t* blockTable, const int32_t* querySeq,
                                                     const int32_t* queryPos, int M, int H, int KVH, int D, int R,
                                                     int S, int maxBlocks, int blockSize, int window);

/* ---- kernels: RMSNorm (kernels/rmsnorm.cu) ----------------------------------------------- */

/*
 * out[N,C] = in[N,C] * rstd[n] * weight[C], rstd[N] = 1 / sqrt(mean(in[n,:]^2) + eps).
 * dtype (enum spin_dtype) covers out, in and weight; rstd is fp32. N == 0 does nothing.
 */
SPIN_EXPORT int spin_rmsnorm_forward(spin_stream_t stream, int dtype, void* out, float* rstd, const void* in,
                                     const void* weight, int N, int C, float eps);

/*
 * sum[N,C] = a + b rounded to dtype (as spin_add), then out/rstd = spin_rmsnorm_forward of that rounded
 * sum, bit for bit, in one pass: the residual add and the norm after it read the stream once.
 * sum may alias a or b; out may alias none of sum, a, b (SPIN_ERR_INVALID_ARG). N == 0 does nothing.
 */
SPIN_EXPORT int spin_add_rmsnorm_forward(spin_stream_t stream, int dtype, void* sum, void* out, float* rstd,
                                         const void* a, const void* b, const void* weight, int N, int C, float eps);

/* Bytes of device scratch that spin_rmsnorm_backward needs for these shapes. */
SPIN_EXPORT int spin_rmsnorm_backward_scratch_bytes(int N, int C, size_t* out);

/*
 * dIn[N,C] = d loss / d in (overwritten); dWeight[C] += d loss / d weight (accumulated, fp32), from
 * dOut[N,C], the forward's in, weight and rstd[N]; dtype covers dIn, dOut, in and weight. Deterministic: dWeight is summed in a fixed
 * order that depends on N and C only. scratch: spin_rmsnorm_backward_scratch_bytes(N, C) bytes.
 */
SPIN_EXPORT int spin_rmsnorm_backward(spin_stream_t stream, int dtype, void* dIn, float* dWeight, float* scratch,
                                      const void* dOut, const void* in, const void* weight,
                                      const float* rstd, int N, int C);

/* ---- kernels: casts (kernels/cast.cu) ---------------------------------------------------- */

/* bf16 values are raw bit patterns. fp32 -> bf16 rounds to nearest even; a NaN stays NaN
   (quieted, sign and upper payload kept). bf16 -> fp32 is exact. */
SPIN_EXPORT int spin_cast_f32_to_bf16(spin_stream_t stream, uint16_t* out, const float* in, size_t count);
SPIN_EXPORT int spin_cast_bf16_to_f32(spin_stream_t stream, float* out, const uint16_t* in, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* SPIN_NATIVE_H */
