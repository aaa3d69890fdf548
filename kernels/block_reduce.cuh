// Block-wide sum with a fixed combination order, so that a kernel using it is bit-reproducible.
#pragma once

// Declares the CUDA built-ins explicitly, so the emulated build (native/emu) finds them too.
#include <cuda_runtime.h>

constexpr int WARP_SIZE = 32;

// Sum of `value` over the block, returned to every thread. BLOCK threads (a multiple of 32);
// warp_sums must hold BLOCK / 32 floats of shared memory and may be reused after the call.
template <int BLOCK>
__device__ float block_sum(float value, float* warp_sums) {
    static_assert(BLOCK % WARP_SIZE == 0, "whole warps only");
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    if (threadIdx.x % WARP_SIZE == 0) warp_sums[threadIdx.x / WARP_SIZE] = value;
    __syncthreads();
    // Every thread adds the warp sums in the same order, so all of them hold the same bits.
    float total = 0.0f;
    for (int warp = 0; warp < BLOCK / WARP_SIZE; ++warp) total += warp_sums[warp];
    __syncthreads();
    return total;
}
