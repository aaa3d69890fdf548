// Greedy token choice on the device: out[s] = argmax over v of logits[s, v], the first index of the
// largest value as torch.argmax and spin.generate.Sampler choose it (a row of -inf gives 0), or -1
// where the row holds a NaN, so the host can say the weights are broken. Greedy decoding then reads
// S token ids back instead of S rows of V logits.
// Shapes: logits [S,V] fp32, out [S] int32.
#include "internal.h"

namespace {

constexpr int ARGMAX_BLOCK = 256;

// (value, index) candidates; index -1 is "none yet". The better of two is the valid one, then the
// larger value, then the smaller index: the first occurrence of the maximum.
__device__ __forceinline__ bool better(float value, int index, float than_value, int than_index) {
    if (index < 0) return false;
    if (than_index < 0) return true;
    return value > than_value || (value == than_value && index < than_index);
}

// One block per row: each thread scans a strided slice, then a fixed tree in shared memory
// combines the candidates, so the result does not depend on the schedule.
__global__ void __launch_bounds__(ARGMAX_BLOCK) argmax_rows_kernel(int32_t* out, const float* logits, int V) {
    __shared__ float values[ARGMAX_BLOCK];
    __shared__ int indices[ARGMAX_BLOCK];
    __shared__ int saw_nan[ARGMAX_BLOCK];
    const float* row = logits + static_cast<size_t>(blockIdx.x) * V;
    float best = -INFINITY;
    int index = -1, nan = 0;
    for (int v = threadIdx.x; v < V; v += ARGMAX_BLOCK) {
        const float x = row[v];
        if (x != x) {
            nan = 1;
        } else if (index < 0 || x > best) {
            best = x;
            index = v;
        }
    }
    values[threadIdx.x] = best;
    indices[threadIdx.x] = index;
    saw_nan[threadIdx.x] = nan;
    __syncthreads();
    for (int half = ARGMAX_BLOCK / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            const int other = threadIdx.x + half;
            if (better(values[other], indices[other], values[threadIdx.x], indices[threadIdx.x])) {
                values[threadIdx.x] = values[other];
                indices[threadIdx.x] = indices[other];
            }
            saw_nan[threadIdx.x] |= saw_nan[other];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = saw_nan[0] ? -1 : indices[0];
}

}  // namespace

extern "C" {

int spin_argmax_rows(spin_stream_t stream, int32_t* out, const float* logits, int S, int V) {
    if (S < 0 || V < 1) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_argmax_rows: need S >= 0 and V >= 1, got S=%d V=%d", S, V);
    if (S == 0) return SPIN_OK;
    if (!out || !logits) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_argmax_rows: NULL tensor pointer");
    SPIN_LAUNCH(argmax_rows_kernel, static_cast<unsigned int>(S), ARGMAX_BLOCK, 0, spin::to_cuda(stream), out, logits, V);
    SPIN_LAUNCH_CHECK(argmax_rows_kernel);
    return SPIN_OK;
}

}  // extern "C"
