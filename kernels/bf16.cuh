// fp32 <-> bf16 bit conversions shared by the kernels that write or read bf16 (kernels/cast.cu,
// kernels/optimizer.cu), so that every bf16 copy of a tensor rounds the same way.
// bf16 travels as its raw 16-bit pattern: the upper half of an IEEE-754 binary32.
#pragma once

#include <cstdint>

// Declares the CUDA built-ins explicitly, so the emulated build (native/emu) finds them too.
#include <cuda_runtime.h>

// Round to nearest, ties to even, by adding 0x7fff plus the lowest kept bit before truncating;
// overflow carries into the exponent and correctly rounds to infinity. NaN is handled first so
// that rounding cannot carry its payload into an infinity: it keeps sign and upper payload and
// gets the quiet bit.
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float value) {
    const uint32_t bits = __float_as_uint(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    const uint32_t lowest_kept_bit = (bits >> 16) & 1u;
    return static_cast<uint16_t>((bits + 0x7fffu + lowest_kept_bit) >> 16);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t bits) {
    return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}
