// Whole-tensor reductions in fp64, the gradient-clipping factor, and weighted running sums.
//   sum:        *out = (sum_i in[i]) / divisor (squares = 0) or (sum_i in[i]^2) / divisor
//               (squares = 1), in double, the division rounded once (divisor 1 leaves the sum)
//   clip scale: norm = sqrt(*sumOfSquares); *scale = min(1, maxNorm / (norm + 1e-6)) as torch's
//               clip_grad_norm_ (the factor in double, rounded once to float; 1 exactly when no
//               clipping is needed), as java/spin/backend/Backend.java's default clipGradNorm
//   accumulate weighted: sums[i] = sums[i] + values[i] * weight, the product and the sum each
//               rounded once (Java's double arithmetic; spin.train.MetricMeans)
// Shapes: in fp32 [count]; out, norm, sumOfSquares fp64 [1] and scale fp32 [1]; sums, values fp64
// [count]; all on the device.
#include <cstdint>

#include "block_reduce.cuh"
#include "internal.h"

namespace {

constexpr int SUM_BLOCK = 256;
// At most this many blocks, each summing one contiguous chunk. Fixed, not tuned to the device,
// because it sets the summation order: the same count gives the same bits on every GPU. 1024
// blocks of 256 threads about fill an H100/H200 (132 SMs x 2048 threads).
constexpr unsigned int SUM_MAX_BLOCKS = 1024;
// Below the cap, a block per SUM_BLOCK * SUM_MIN_PER_THREAD elements: enough work per thread to
// amortise the block's reduction (and, under the emulator, its 256 fibers).
constexpr size_t SUM_MIN_PER_THREAD = 16;

// Blocks and chunk length for `count` elements (count > 0). A chunk is a whole number of block
// strides, so that every warp's loads start at the same alignment as `in`.
struct SumPlan {
    unsigned int blocks;
    size_t chunk;
};

SumPlan sum_plan(size_t count) {
    const size_t per_block = SUM_BLOCK * SUM_MIN_PER_THREAD;
    const size_t wanted = (count + per_block - 1) / per_block;
    const unsigned int blocks = wanted < SUM_MAX_BLOCKS ? static_cast<unsigned int>(wanted) : SUM_MAX_BLOCKS;
    const size_t strides = ((count + blocks - 1) / blocks + SUM_BLOCK - 1) / SUM_BLOCK;
    return {blocks, strides * SUM_BLOCK};
}

// partial[b] = the sum over elements [b * chunk, (b + 1) * chunk): thread t adds elements t,
// t + BLOCK, ... of the chunk in order, then the block adds the thread sums in block_sum's order.
__global__ void __launch_bounds__(SUM_BLOCK)
sum_partial_kernel(double* partial, const float* in, size_t count, size_t chunk, int squares) {
    __shared__ double warp_sums[SUM_BLOCK / WARP_SIZE];
    const size_t begin = static_cast<size_t>(blockIdx.x) * chunk;
    const size_t end = begin + chunk < count ? begin + chunk : count;
    double sum = 0;
    for (size_t i = begin + threadIdx.x; i < end; i += SUM_BLOCK) {
        // A float's square is exact in double, so a fused multiply-add here changes no bits.
        const double value = in[i];
        sum += squares ? value * value : value;
    }
    sum = block_sum<SUM_BLOCK>(sum, warp_sums);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// *out = the sum of partial[0, blocks) / divisor: thread t adds partials t, t + BLOCK, ... in
// order. No blocks (an empty input) gives 0 / divisor.
__global__ void __launch_bounds__(SUM_BLOCK)
sum_final_kernel(double* out, const double* partial, unsigned int blocks, double divisor) {
    __shared__ double warp_sums[SUM_BLOCK / WARP_SIZE];
    double sum = 0;
    for (unsigned int b = threadIdx.x; b < blocks; b += SUM_BLOCK) sum += partial[b];
    sum = block_sum<SUM_BLOCK>(sum, warp_sums);
    if (threadIdx.x == 0) *out = sum / divisor;
}

// One thread. As Backend.clipFactor: coefficient = maxNorm / (norm + 1e-6) in double, applied
// (rounded to float) only when below 1. A NaN norm gives a NaN scale, so a diverged step stays
// visible rather than passing unclipped. Without a scale, only the norm.
__global__ void clip_scale_kernel(float* scale, double* norm, const double* sumOfSquares, double maxNorm) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    const double total_norm = sqrt(*sumOfSquares);
    if (scale) {
        const double coefficient = maxNorm / (total_norm + 1e-6);
        *scale = coefficient < 1 || coefficient != coefficient ? static_cast<float>(coefficient) : 1.0f;
    }
    if (norm) *norm = total_norm;
}

constexpr int ACCUMULATE_BLOCK = 256;

// __dmul_rn: nvcc would otherwise fuse the product into the add, which rounds once where Java
// rounds twice.
__global__ void __launch_bounds__(ACCUMULATE_BLOCK)
accumulate_weighted_kernel(double* sums, const double* values, double weight, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * ACCUMULATE_BLOCK + threadIdx.x;
    if (i < count) sums[i] = sums[i] + __dmul_rn(values[i], weight);
}

}  // namespace

extern "C" {

int spin_sum_scratch_bytes(size_t count, size_t* out) {
    if (!out) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_sum_scratch_bytes: NULL out");
    *out = count == 0 ? 0 : static_cast<size_t>(sum_plan(count).blocks) * sizeof(double);
    return SPIN_OK;
}

int spin_sum(spin_stream_t stream, double* out, void* scratch, const float* in, size_t count, int squares,
             double divisor) {
    if (squares != 0 && squares != 1) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_sum: squares must be 0 or 1, got %d", squares);
    }
    if (!out || (count > 0 && (!scratch || !in))) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_sum: NULL tensor pointer");
    }
    const cudaStream_t cuda_stream = spin::to_cuda(stream);
    unsigned int blocks = 0;
    double* partial = static_cast<double*>(scratch);
    if (count > 0) {
        const SumPlan plan = sum_plan(count);
        blocks = plan.blocks;
        SPIN_LAUNCH(sum_partial_kernel, blocks, SUM_BLOCK, 0, cuda_stream, partial, in, count, plan.chunk, squares);
        SPIN_LAUNCH_CHECK(sum_partial_kernel);
    }
    SPIN_LAUNCH(sum_final_kernel, 1, SUM_BLOCK, 0, cuda_stream, out, partial, blocks, divisor);
    SPIN_LAUNCH_CHECK(sum_final_kernel);
    return SPIN_OK;
}

int spin_clip_scale(spin_stream_t stream, float* scale, double* norm, const double* sumOfSquares, double maxNorm) {
    if ((!scale && !norm) || !sumOfSquares) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_clip_scale: NULL tensor pointer");
    // Clipping happens only for maxNorm > 0; a factor from 0 or less would zero or flip the
    // gradients, so asking for one is a caller's bug.
    if (scale && !(maxNorm > 0)) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_clip_scale: maxNorm must be > 0 (clipping off: do not call), got %g",
                          maxNorm);
    }
    SPIN_LAUNCH(clip_scale_kernel, 1, 1, 0, spin::to_cuda(stream), scale, norm, sumOfSquares, maxNorm);
    SPIN_LAUNCH_CHECK(clip_scale_kernel);
    return SPIN_OK;
}

int spin_accumulate_weighted(spin_stream_t stream, double* sums, const double* values, double weight, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!sums || !values) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_accumulate_weighted: NULL tensor pointer");
    const size_t blocks = (count + ACCUMULATE_BLOCK - 1) / ACCUMULATE_BLOCK;
    if (blocks > 0x7fffffffu) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_accumulate_weighted: %zu elements is too many", count);
    }
    SPIN_LAUNCH(accumulate_weighted_kernel, static_cast<unsigned int>(blocks), ACCUMULATE_BLOCK, 0,
                spin::to_cuda(stream), sums, values, weight, count);
    SPIN_LAUNCH_CHECK(accumulate_weighted_kernel);
    return SPIN_OK;
}

}  // extern "C"
