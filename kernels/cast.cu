// fp32 <-> bf16 conversion, the forward and backward of a precision cast (each is the other's
// backward). bf16 travels as its raw 16-bit pattern: the upper half of an IEEE-754 binary32.
#include "bf16.cuh"
#include "internal.h"

namespace {

constexpr int CAST_BLOCK = 256;

__global__ void __launch_bounds__(CAST_BLOCK) cast_f32_to_bf16_kernel(uint16_t* out, const float* in, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * CAST_BLOCK + threadIdx.x;
    if (i < count) out[i] = f32_to_bf16_bits(in[i]);
}

__global__ void __launch_bounds__(CAST_BLOCK) cast_bf16_to_f32_kernel(float* out, const uint16_t* in, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * CAST_BLOCK + threadIdx.x;
    if (i < count) out[i] = bf16_bits_to_f32(in[i]);
}

// One thread per element; the grid's x dimension (2^31 - 1 blocks) covers 5.5e11 elements.
int cast_blocks(const char* call, size_t count, unsigned int* blocks) {
    const size_t needed = (count + CAST_BLOCK - 1) / CAST_BLOCK;
    if (needed > 0x7fffffffu) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %zu elements is too many", call, count);
    *blocks = static_cast<unsigned int>(needed);
    return SPIN_OK;
}

}  // namespace

extern "C" {

int spin_cast_f32_to_bf16(spin_stream_t stream, uint16_t* out, const float* in, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!out || !in) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_cast_f32_to_bf16: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = cast_blocks("spin_cast_f32_to_bf16", count, &blocks)) return status;
    SPIN_LAUNCH(cast_f32_to_bf16_kernel, blocks, CAST_BLOCK, 0, spin::to_cuda(stream), out, in, count);
    SPIN_LAUNCH_CHECK(cast_f32_to_bf16_kernel);
    return SPIN_OK;
}

int spin_cast_bf16_to_f32(spin_stream_t stream, float* out, const uint16_t* in, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!out || !in) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_cast_bf16_to_f32: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = cast_blocks("spin_cast_bf16_to_f32", count, &blocks)) return status;
    SPIN_LAUNCH(cast_bf16_to_f32_kernel, blocks, CAST_BLOCK, 0, spin::to_cuda(stream), out, in, count);
    SPIN_LAUNCH_CHECK(cast_bf16_to_f32_kernel);
    return SPIN_OK;
}

}  // extern "C"
