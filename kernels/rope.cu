// Rotary position embedding (HF Mistral's rotate-half form), on fp32 or bf16 activations:
//   inv_freq[i] = 1 / theta^(2i / D), angle[i] = p * inv_freq[i]   for i < D/2, p = positions[b,t]
//   forward:  (x1, x2) = (x[i], x[i + D/2])  ->  (x1 cos - x2 sin, x2 cos + x1 sin)
//   backward: the same rotation by -angle (the transpose of the forward's)
// Shapes: in, out, dOut, dIn [B,T,H,D] of the compute dtype T; positions [B,T]. Out may alias in.
// The qk entry points rotate q [B,T,H,D] and k [B,T,KVH,D] in place in one launch, one table per row.
//
// The angles are rounded to fp32 at the steps java/spin/backend/cpu/Rope.java (and torch) rounds
// them: exponent (float)(2i) / D, theta^exponent in double rounded to float, the fp32 reciprocal,
// the fp32 product with the position; cos and sin in double rounded to float. The rotation rounds
// each product and then the sum, as CpuBackend.rotateHead does (__fmul_rn keeps nvcc from fusing
// them into an FMA), so the two backends agree bit for bit up to the last-ulp differences of the
// device's double pow/cos/sin. A bf16 element is widened to fp32 and its rotation, computed as
// above, rounded once to bf16.
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int ROPE_BLOCK = 128;
// Shared memory (static plus dynamic) a kernel may use without opting in to more.
constexpr size_t DEFAULT_SHARED_LIMIT = 48 * 1024;

// Rotates the H heads of one (b, t) row by the block's table. Thread t rotates pairs t, t + BLOCK, ...
// of the row's H * D/2 pairs, so neighbouring threads touch neighbouring elements, and each pair is
// read whole before it is written, which makes out == in safe.
template <typename T>
__device__ void rope_row(T* out, const T* in, int H, int D, const float* cos_table, const float* sin_table) {
    const int half = D / 2;
    const size_t row = static_cast<size_t>(blockIdx.x) * H * D;
    const int pairs = H * half;
    for (int p = threadIdx.x; p < pairs; p += ROPE_BLOCK) {
        const int head = p / half;
        const int i = p - head * half;
        const size_t first = row + static_cast<size_t>(head) * D + i;
        const float x1 = to_f32(in[first]);
        const float x2 = to_f32(in[first + half]);
        const float c = cos_table[i];
        const float s = sin_table[i];
        out[first] = from_f32<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
        out[first + half] = from_f32<T>(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
    }
}

// One block per (b, t): the D/2 cos and sin of its position are computed once into shared memory
// and serve all H heads of out/in and then, where out2 is given (q and k in one launch), all H2
// heads of out2/in2. direction: 1 forward, -1 backward.
template <typename T>
__global__ void __launch_bounds__(ROPE_BLOCK)
rope_kernel(T* out, const T* in, int H, T* out2, const T* in2, int H2, const int32_t* positions, int D, float theta,
            float direction) {
    SPIN_DYNAMIC_SHARED(float, table);  // cos [D/2], then direction * sin [D/2]
    const int half = D / 2;
    float* const cos_table = table;
    float* const sin_table = table + half;
    const int position = positions[blockIdx.x];
    for (int i = threadIdx.x; i < half; i += ROPE_BLOCK) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(D);
        const double power = pow(static_cast<double>(theta), static_cast<double>(exponent));
        const float inv_freq = 1.0f / static_cast<float>(power);
        const float angle = static_cast<float>(position) * inv_freq;
        // (ptxas reports 40 bytes of local memory for this kernel: CUDA's double cos/sin keep
        // their slow argument reduction there, taken only for very large angles.)
        cos_table[i] = static_cast<float>(cos(static_cast<double>(angle)));
        sin_table[i] = direction * static_cast<float>(sin(static_cast<double>(angle)));
    }
    __syncthreads();
    rope_row(out, in, H, D, cos_table, sin_table);
    if (out2) rope_row(out2, in2, H2, D, cos_table, sin_table);
}

// out/in [B,T,H,D] and, when out2 is not NULL, out2/in2 [B,T,H2,D] by the same positions.
int rope(const char* call, spin_stream_t stream, int dtype, void* out, const void* in, int H, void* out2, const void* in2,
         int H2, const int32_t* positions, int B, int T, int D, float theta, float direction) {
    if (B < 0 || T < 0 || H < 0 || H2 < 0 || D < 0 || D % 2 != 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "%s: need B, T, H, KVH >= 0 and an even D >= 0, got B=%d T=%d H=%d KVH=%d D=%d", call, B, T, H,
                          H2, D);
    }
    if (out2 == nullptr) H2 = 0;
    if (B == 0 || T == 0 || (H == 0 && H2 == 0) || D == 0) return SPIN_OK;
    if ((H > 0 && (!out || !in)) || (H2 > 0 && !in2) || !positions) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
    }
    const int64_t rows = static_cast<int64_t>(B) * T;
    // One block per row in the grid's x dimension; a row's pairs are counted in int.
    if (rows > 0x7fffffff || static_cast<int64_t>(H) * (D / 2) > 0x7fffffff ||
        static_cast<int64_t>(H2) * (D / 2) > 0x7fffffff) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: B=%d T=%d H=%d KVH=%d D=%d is too large", call, B, T, H, H2, D);
    }
    const size_t shared_bytes = static_cast<size_t>(D) * sizeof(float);
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        using T = decltype(element);
        if (shared_bytes > DEFAULT_SHARED_LIMIT) {
            SPIN_CUDA_TRY(cudaFuncSetAttribute(rope_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(shared_bytes)));
        }
        SPIN_LAUNCH(rope_kernel<T>, static_cast<unsigned int>(rows), ROPE_BLOCK, shared_bytes, spin::to_cuda(stream),
                    static_cast<T*>(out), static_cast<const T*>(in), H, H2 > 0 ? static_cast<T*>(out2) : nullptr,
                    static_cast<const T*>(in2), H2, positions, D, theta, direction);
        SPIN_LAUNCH_CHECK(rope_kernel);
        return SPIN_OK;
    });
}

}  // namespace

extern "C" {

int spin_rope_forward(spin_stream_t stream, int dtype, void* out, const void* in, const int32_t* positions, int B,
                      int T, int H, int D, float theta) {
    return rope("spin_rope_forward", stream, dtype, out, in, H, nullptr, nullptr, 0, positions, B, T, D, theta, 1.0f);
}

int spin_rope_backward(spin_stream_t stream, int dtype, void* dIn, const void* dOut, const int32_t* positions, int B,
                       int T, int H, int D, float theta) {
    return rope("spin_rope_backward", stream, dtype, dIn, dOut, H, nullptr, nullptr, 0, positions, B, T, D, theta, -1.0f);
}

int spin_rope_qk_forward(spin_stream_t stream, int dtype, void* q, void* k, const int32_t* positions, int B, int T,
                         int H, int KVH, int D, float theta) {
    if (!k) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rope_qk_forward: NULL tensor pointer");
    return rope("spin_rope_qk_forward", stream, dtype, q, q, H, k, k, KVH, positions, B, T, D, theta, 1.0f);
}

int spin_rope_qk_backward(spin_stream_t stream, int dtype, void* dq, void* dk, const int32_t* positions, int B, int T,
                          int H, int KVH, int D, float theta) {
    if (!dk) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rope_qk_backward: NULL tensor pointer");
    return rope("spin_rope_qk_backward", stream, dtype, dq, dq, H, dk, dk, KVH, positions, B, T, D, theta, -1.0f);
}

}  // extern "C"
