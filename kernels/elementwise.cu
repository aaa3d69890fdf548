// Element-wise ops on contiguous [count] tensors, one thread per element:
//   add:             out[i] = a[i] + b[i]   (out may alias a or b: each thread reads before it writes),
//                    on fp32 or bf16 activations (the residual stream and its gradient)
//   scale:           dst[i] = dst[i] * factor
//   scale_by_device: dst[i] = dst[i] * factor[0], factor read on the device (gradient clipping
//                    without a host round trip)
//   fill:            dst[i] = value
// scale, scale_by_device and fill are fp32 only: they serve gradients and optimizer state.
// Each fp32 result is one correctly rounded fp32 operation, so every GPU and the CPU backend agree
// bit for bit; a bf16 sum is that fp32 sum rounded once to bf16.
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int ELEMENTWISE_BLOCK = 256;

template <typename T>
__global__ void __launch_bounds__(ELEMENTWISE_BLOCK) add_kernel(T* out, const T* a, const T* b, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * ELEMENTWISE_BLOCK + threadIdx.x;
    if (i < count) out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}

__global__ void __launch_bounds__(ELEMENTWISE_BLOCK) scale_kernel(float* dst, float factor, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * ELEMENTWISE_BLOCK + threadIdx.x;
    if (i < count) dst[i] *= factor;
}

__global__ void __launch_bounds__(ELEMENTWISE_BLOCK)
scale_by_device_kernel(float* dst, const float* factor, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * ELEMENTWISE_BLOCK + threadIdx.x;
    if (i < count) dst[i] *= *factor;
}

__global__ void __launch_bounds__(ELEMENTWISE_BLOCK) fill_kernel(float* dst, float value, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * ELEMENTWISE_BLOCK + threadIdx.x;
    if (i < count) dst[i] = value;
}

// One thread per element; the grid's x dimension (2^31 - 1 blocks) covers 5.5e11 elements.
int elementwise_blocks(const char* call, size_t count, unsigned int* blocks) {
    const size_t needed = (count + ELEMENTWISE_BLOCK - 1) / ELEMENTWISE_BLOCK;
    if (needed > 0x7fffffffu) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %zu elements is too many", call, count);
    *blocks = static_cast<unsigned int>(needed);
    return SPIN_OK;
}

}  // namespace

extern "C" {

int spin_add(spin_stream_t stream, int dtype, void* out, const void* a, const void* b, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!out || !a || !b) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_add: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = elementwise_blocks("spin_add", count, &blocks)) return status;
    return spin::with_dtype("spin_add", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(add_kernel<T>, blocks, ELEMENTWISE_BLOCK, 0, spin::to_cuda(stream), static_cast<T*>(out),
                    static_cast<const T*>(a), static_cast<const T*>(b), count);
        SPIN_LAUNCH_CHECK(add_kernel);
        return SPIN_OK;
    });
}

int spin_scale(spin_stream_t stream, float* dst, float factor, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!dst) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_scale: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = elementwise_blocks("spin_scale", count, &blocks)) return status;
    SPIN_LAUNCH(scale_kernel, blocks, ELEMENTWISE_BLOCK, 0, spin::to_cuda(stream), dst, factor, count);
    SPIN_LAUNCH_CHECK(scale_kernel);
    return SPIN_OK;
}

int spin_scale_by_device(spin_stream_t stream, float* dst, const float* factor, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!dst || !factor) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_scale_by_device: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = elementwise_blocks("spin_scale_by_device", count, &blocks)) return status;
    SPIN_LAUNCH(scale_by_device_kernel, blocks, ELEMENTWISE_BLOCK, 0, spin::to_cuda(stream), dst, factor, count);
    SPIN_LAUNCH_CHECK(scale_by_device_kernel);
    return SPIN_OK;
}

int spin_fill(spin_stream_t stream, float* dst, float value, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!dst) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_fill: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = elementwise_blocks("spin_fill", count, &blocks)) return status;
    SPIN_LAUNCH(fill_kernel, blocks, ELEMENTWISE_BLOCK, 0, spin::to_cuda(stream), dst, value, count);
    SPIN_LAUNCH_CHECK(fill_kernel);
    return SPIN_OK;
}

}  // extern "C"
