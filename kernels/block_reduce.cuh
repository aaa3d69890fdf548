// Block-wide sum and max with a fixed combination order, so that a kernel using them is
// bit-reproducible.
#pragma once

// Declares the CUDA built-ins explicitly, so the emulated build (native/emu) finds them too.
#include <cuda_runtime.h>

constexpr int WARP_SIZE = 32;

// Sum of `value` over the block, returned to every thread; T is float or double (the fp64
// reductions of kernels/reduce.cu). BLOCK threads (a multiple of 32); warp_sums must hold
// BLOCK / 32 values of shared memory and may be reused after the call.
template <int BLOCK, class T>
__device__ T block_sum(T value, T* warp_sums) {
    static_assert(BLOCK % WARP_SIZE == 0, "whole warps only");
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    if (threadIdx.x % WARP_SIZE == 0) warp_sums[threadIdx.x / WARP_SIZE] = value;
    __syncthreads();
    // Every thread adds the warp sums in the same order, so all of them hold the same bits.
    T total = 0;
    for (int warp = 0; warp < BLOCK / WARP_SIZE; ++warp) total += warp_sums[warp];
    __syncthreads();
    return total;
}

// Largest `value` over the block, returned to every thread, with block_sum's shape and shared
// memory rules. A NaN anywhere gives NaN (fmaxf would drop it), so that a NaN input stays visible.
template <int BLOCK>
__device__ float block_max(float value, float* warp_maxima) {
    static_assert(BLOCK % WARP_SIZE == 0, "whole warps only");
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        const float other = __shfl_xor_sync(0xffffffffu, value, offset);
        value = (other > value || other != other) ? other : value;
    }
    if (threadIdx.x % WARP_SIZE == 0) warp_maxima[threadIdx.x / WARP_SIZE] = value;
    __syncthreads();
    float result = warp_maxima[0];
    for (int warp = 1; warp < BLOCK / WARP_SIZE; ++warp) {
        const float other = warp_maxima[warp];
        result = (other > result || other != other) ? other : result;
    }
    __syncthreads();
    return result;
}
