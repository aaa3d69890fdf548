// SwiGLU, the gate of Mistral's MLP, on fp32 or bf16 activations, one thread per element:
//   forward:  s = sigmoid(gate) = 1 / (1 + exp(-gate));  out = gate * s * up
//   backward: dUp = dOut * gate * s;  dGate = dOut * up * s * (1 + gate * (1 - s))
// in the operation order of CpuBackend.swigluForward/Backward (which uses its own vector exp, so
// the two backends agree to a few ulp, not bit for bit).
// Shapes: out, gate, up, dOut, dGate, dUp all [count], all of the compute dtype T: each input is
// widened to fp32, the formula computed in fp32, and each output rounded once to T.
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int SWIGLU_BLOCK = 256;

// expf rather than __expf, whose error grows with |x| (2 + 1.17 |x| ulp). exp(-x) overflowing to
// infinity for x < -88 gives s = 0, the right limit, not NaN.
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
__global__ void __launch_bounds__(SWIGLU_BLOCK)
swiglu_forward_kernel(T* out, const T* gate, const T* up, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * SWIGLU_BLOCK + threadIdx.x;
    if (i >= count) return;
    const float x = to_f32(gate[i]);
    out[i] = from_f32<T>(x * sigmoid(x) * to_f32(up[i]));
}

template <typename T>
__global__ void __launch_bounds__(SWIGLU_BLOCK)
swiglu_backward_kernel(T* dGate, T* dUp, const T* dOut, const T* gate, const T* up, size_t count) {
    const size_t i = static_cast<size_t>(blockIdx.x) * SWIGLU_BLOCK + threadIdx.x;
    if (i >= count) return;
    const float x = to_f32(gate[i]);
    const float s = sigmoid(x);
    const float grad = to_f32(dOut[i]);
    // Every input is read before either output is written, so an output may share storage with an
    // input (the header does not promise it; this keeps it harmless).
    const float up_value = to_f32(up[i]);
    dUp[i] = from_f32<T>(grad * x * s);
    dGate[i] = from_f32<T>(grad * up_value * s * (1.0f + x * (1.0f - s)));
}

// One thread per element; the grid's x dimension (2^31 - 1 blocks) covers 5.5e11 elements.
int swiglu_blocks(const char* call, size_t count, unsigned int* blocks) {
    const size_t needed = (count + SWIGLU_BLOCK - 1) / SWIGLU_BLOCK;
    if (needed > 0x7fffffffu) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %zu elements is too many", call, count);
    *blocks = static_cast<unsigned int>(needed);
    return SPIN_OK;
}

}  // namespace

extern "C" {

int spin_swiglu_forward(spin_stream_t stream, int dtype, void* out, const void* gate, const void* up, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!out || !gate || !up) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_swiglu_forward: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = swiglu_blocks("spin_swiglu_forward", count, &blocks)) return status;
    return spin::with_dtype("spin_swiglu_forward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(swiglu_forward_kernel<T>, blocks, SWIGLU_BLOCK, 0, spin::to_cuda(stream), static_cast<T*>(out),
                    static_cast<const T*>(gate), static_cast<const T*>(up), count);
        SPIN_LAUNCH_CHECK(swiglu_forward_kernel);
        return SPIN_OK;
    });
}

int spin_swiglu_backward(spin_stream_t stream, int dtype, void* dGate, void* dUp, const void* dOut, const void* gate,
                         const void* up, size_t count) {
    if (count == 0) return SPIN_OK;
    if (!dGate || !dUp || !dOut || !gate || !up) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_swiglu_backward: NULL tensor pointer");
    }
    unsigned int blocks = 0;
    if (int status = swiglu_blocks("spin_swiglu_backward", count, &blocks)) return status;
    return spin::with_dtype("spin_swiglu_backward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(swiglu_backward_kernel<T>, blocks, SWIGLU_BLOCK, 0, spin::to_cuda(stream), static_cast<T*>(dGate),
                    static_cast<T*>(dUp), static_cast<const T*>(dOut), static_cast<const T*>(gate),
                    static_cast<const T*>(up), count);
        SPIN_LAUNCH_CHECK(swiglu_backward_kernel);
        return SPIN_OK;
    });
}

}  // extern "C"
