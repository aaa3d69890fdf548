// The compute dtype of an op's activation operands (enum spin_dtype): kernels are templates over
// the element type T (float or bf16), load every element as fp32, accumulate in fp32 and round
// once when they store a T. One definition here so that every kernel rounds alike (bf16.cuh).
#pragma once

#include "bf16.cuh"
#include "internal.h"

// A bf16 element in memory: its raw bit pattern, distinct from uint16_t so that overloads pick it.
struct bf16 {
    uint16_t bits;
};

// 16 bytes moved by one vector load or store (4 fp32 or 8 bf16); the alignment makes nvcc emit
// the 128-bit instruction.
struct alignas(16) Pack16 {
    uint32_t words[4];
};

__device__ __forceinline__ float to_f32(float value) { return value; }
__device__ __forceinline__ float to_f32(bf16 value) { return bf16_bits_to_f32(value.bits); }

template <typename T>
__device__ __forceinline__ T from_f32(float value);
template <>
__device__ __forceinline__ float from_f32<float>(float value) {
    return value;
}
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float value) {
    return bf16{f32_to_bf16_bits(value)};
}

namespace spin {

// Calls launch(T{}) with T the element type of dtype, so that a launcher is written once for both:
//   return spin::with_dtype("spin_x", dtype, [&](auto element) -> int { using T = decltype(element); ... });
template <typename Launch>
int with_dtype(const char* call, int dtype, Launch&& launch) {
    switch (dtype) {
        case SPIN_DTYPE_F32:
            return launch(float{});
        case SPIN_DTYPE_BF16:
            return launch(bf16{});
        default:
            return fail(SPIN_ERR_INVALID_ARG, "%s: unknown dtype %d (0 = fp32, 1 = bf16)", call, dtype);
    }
}

}  // namespace spin
