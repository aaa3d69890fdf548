// Fused log-softmax gather over the vocabulary with its backward; the [N,V] log-softmax is never
// materialised. Logits, log-probs, lse and dLogp are fp32; dLogits is fp32 or bf16 (the compute
// dtype of the lm_head product it feeds), computed in fp32 and rounded once.
//   forward:  lse[n] = logsumexp(logits[n,:]) = max + log(sum_v exp(logits[n,v] - max));
//             logp[n] = logits[n, labels[n]] - lse[n]; 0 where labels[n] == -100 (lse still saved)
//   backward: dLogits[n,v] = dLogp[n] * ((v == labels[n]) - exp(logits[n,v] - lse[n]));
//             a zero row where labels[n] == -100
// A label neither in [0, V) nor -100 is never read through: it gives a NaN logp, a NaN gradient row.
// Shapes: logits, dLogits [N,V]; labels int32 [N]; logp, lse, dLogp [N]. An fp32 dLogits may alias
// logits; a bf16 one must not overlap them.
#include <cstdint>

#include "block_reduce.cuh"
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int LOGPROB_BLOCK = 256;
// Backend.IGNORE_INDEX, HF's ignore_index.
constexpr int32_t IGNORE_INDEX = -100;

__device__ __forceinline__ float quiet_nan() { return __uint_as_float(0x7fc00000u); }

// One block per row, one pass over it: each thread keeps an online (max, sum of exp(x - max)) over
// its strided columns, rescaling the sum when its max grows; the block then takes the row max and
// adds the thread sums rescaled to it, in block_sum's fixed order. A NaN logit makes the sum NaN.
__global__ void __launch_bounds__(LOGPROB_BLOCK)
logprob_forward_kernel(float* logp, float* lse, const float* logits, const int32_t* labels, int V) {
    __shared__ float warp_scratch[LOGPROB_BLOCK / WARP_SIZE];
    const float* x = logits + static_cast<size_t>(blockIdx.x) * V;

    float thread_max = -INFINITY;
    float thread_sum = 0.0f;
    for (int v = threadIdx.x; v < V; v += LOGPROB_BLOCK) {
        const float xv = x[v];
        if (xv > thread_max) {
            thread_sum = thread_sum * expf(thread_max - xv) + 1.0f;
            thread_max = xv;
        } else if (xv != -INFINITY) {
            // A -inf logit adds exp(-inf) = 0; computed, it would be exp(-inf - -inf) = NaN while
            // this thread's maximum is still -inf.
            thread_sum += expf(xv - thread_max);
        }
    }
    const float row_max = block_max<LOGPROB_BLOCK>(thread_max, warp_scratch);
    // A thread without columns (V < block) holds sum 0 at max -inf and adds 0 * exp(-inf) = 0.
    const float row_sum = block_sum<LOGPROB_BLOCK>(thread_sum * expf(thread_max - row_max), warp_scratch);

    if (threadIdx.x == 0) {
        const float row_lse = row_max + logf(row_sum);
        const int32_t label = labels[blockIdx.x];
        float value;
        if (label == IGNORE_INDEX) {
            value = 0.0f;
        } else if (label < 0 || label >= V) {
            value = quiet_nan();
        } else {
            value = x[label] - row_lse;
        }
        lse[blockIdx.x] = row_lse;
        logp[blockIdx.x] = value;
    }
}

// One block per row. Each element is read and then written by the same thread, and no thread reads
// another's element, which is what lets an fp32 dLogits alias logits (a bf16 element v would share
// bytes with logit v / 2, another thread's).
template <typename T>
__global__ void __launch_bounds__(LOGPROB_BLOCK)
logprob_backward_kernel(T* dLogits, const float* dLogp, const float* logits, const int32_t* labels, const float* lse,
                        int V) {
    const size_t row_offset = static_cast<size_t>(blockIdx.x) * V;
    const float* x = logits + row_offset;
    T* dx = dLogits + row_offset;
    const int32_t label = labels[blockIdx.x];

    if (label == IGNORE_INDEX || label < 0 || label >= V) {
        const T fill = from_f32<T>(label == IGNORE_INDEX ? 0.0f : quiet_nan());
        for (int v = threadIdx.x; v < V; v += LOGPROB_BLOCK) dx[v] = fill;
        return;
    }
    const float g = dLogp[blockIdx.x];
    const float row_lse = lse[blockIdx.x];
    for (int v = threadIdx.x; v < V; v += LOGPROB_BLOCK) {
        // As the CPU op: -g * softmax first, then + g at the label.
        float d = -g * expf(x[v] - row_lse);
        if (v == label) d += g;
        dx[v] = from_f32<T>(d);
    }
}

int check_shape(const char* call, int N, int V) {
    if (N >= 0 && V > 0) return SPIN_OK;
    return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need N >= 0 and V > 0, got N=%d V=%d", call, N, V);
}

}  // namespace

extern "C" {

int spin_logprob_forward(spin_stream_t stream, float* logp, float* lse, const float* logits, const int32_t* labels,
                         int N, int V) {
    if (int status = check_shape("spin_logprob_forward", N, V)) return status;
    if (N == 0) return SPIN_OK;
    if (!logp || !lse || !logits || !labels) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_logprob_forward: NULL tensor pointer");
    }
    SPIN_LAUNCH(logprob_forward_kernel, N, LOGPROB_BLOCK, 0, spin::to_cuda(stream), logp, lse, logits, labels, V);
    SPIN_LAUNCH_CHECK(logprob_forward_kernel);
    return SPIN_OK;
}

int spin_logprob_backward(spin_stream_t stream, int dtype, void* dLogits, const float* dLogp, const float* logits,
                          const int32_t* labels, const float* lse, int N, int V) {
    if (int status = check_shape("spin_logprob_backward", N, V)) return status;
    if (N == 0) return SPIN_OK;
    if (!dLogits || !dLogp || !logits || !labels || !lse) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_logprob_backward: NULL tensor pointer");
    }
    return spin::with_dtype("spin_logprob_backward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        const size_t count = static_cast<size_t>(N) * V;
        const uintptr_t out = reinterpret_cast<uintptr_t>(dLogits), in = reinterpret_cast<uintptr_t>(logits);
        const bool overlaps = out < in + count * sizeof(float) && in < out + count * sizeof(T);
        if (sizeof(T) != sizeof(float) && overlaps) {
            return spin::fail(SPIN_ERR_INVALID_ARG,
                              "spin_logprob_backward: bf16 dLogits overlap the fp32 logits; only fp32 dLogits may "
                              "alias them");
        }
        SPIN_LAUNCH(logprob_backward_kernel<T>, N, LOGPROB_BLOCK, 0, spin::to_cuda(stream), static_cast<T*>(dLogits),
                    dLogp, logits, labels, lse, V);
        SPIN_LAUNCH_CHECK(logprob_backward_kernel);
        return SPIN_OK;
    });
}

}  // extern "C"
