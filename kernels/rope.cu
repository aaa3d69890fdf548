// Rotary position embedding (HF Mistral's rotate-half form), on fp32 or bf16 activations:
//   inv_freq[i] = 1 / theta^(2i / D), angle[i] = p * inv_freq[i]   for i < D/2, p = positions[b,t]
//   forward:  (x1, x2) = (x[i], x[i + D/2])  ->  (x1 cos - x2 sin, x2 cos + x1 sin)
//   backward: the same rotation by -angle (the transpose of the forward's)
// Shapes: in, out, dOut, dIn [B,T,H,D] of the compute dtype T; positions [B,T]. Out may alias in.
// The qkv entry points fuse RoPE with the split of the stacked q/k/v projection: one launch reads
// the rows qkv [B,T,(H+2KVH)*D] and writes q [B,T,H,D] and k [B,T,KVH,D] rotated and v [B,T,KVH,D]
// copied (the backward: dq, dk rotated back and dv into the stacked rows), one table per row.
//
// The angles are rounded to fp32 at the steps java/spin/backend/cpu/Rope.java (and torch) rounds
// them: exponent (float)(2i) / D, theta^exponent in double rounded to float, the fp32 reciprocal,
// the fp32 product with the position; cos and sin in double rounded to float. The rotation rounds
// each product and then the sum, as CpuBackend.rotateHead does (__fmul_rn keeps nvcc from fusing
// them into an FMA), so the two backends agree bit for bit up to the last-ulp differences of the
// device's double pow/cos/sin. A bf16 element is widened to fp32 and its rotation, computed as
// above, rounded once to bf16.
#include <cstdint>
#include <initializer_list>

#include "dtype.cuh"
#include "internal.h"
#include "ptx.cuh"

namespace {

constexpr int ROPE_BLOCK = 128;
// Shared memory (static plus dynamic) a kernel may use without opting in to more.
constexpr size_t DEFAULT_SHARED_LIMIT = 48 * 1024;

// One tensor's heads in every (b, t) row: row r's heads start at element r * out_row of out and
// r * in_row of in. Plain RoPE has out_row == in_row == heads * D; the stacked q/k/v rows of the
// fused split are (H + 2 KVH) * D wide on one side.
template <typename T>
struct RopeRows {
    T* out;
    const T* in;
    int heads;
    int out_row;
    int in_row;
};

// Rotates the heads of one (b, t) row by the block's table. Thread t rotates pairs t, t + BLOCK, ...
// of the row's heads * D/2 pairs, so neighbouring threads touch neighbouring elements, and each pair
// is read whole before it is written, which makes out == in safe.
template <typename T>
__device__ void rope_row(const RopeRows<T>& rows, int D, const float* cos_table, const float* sin_table) {
    const int half = D / 2;
    T* const out = rows.out + static_cast<size_t>(blockIdx.x) * rows.out_row;
    const T* const in = rows.in + static_cast<size_t>(blockIdx.x) * rows.in_row;
    const int pairs = rows.heads * half;
    for (int p = threadIdx.x; p < pairs; p += ROPE_BLOCK) {
        const int head = p / half;
        const int i = p - head * half;
        const int first = head * D + i;
        const float x1 = to_f32(in[first]);
        const float x2 = to_f32(in[first + half]);
        const float c = cos_table[i];
        const float s = sin_table[i];
        out[first] = from_f32<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
        out[first + half] = from_f32<T>(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
    }
}

// 16 bytes of T, moved as one load or store where aligned.
template <typename T>
struct alignas(16) Lanes {
    static constexpr int COUNT = 16 / sizeof(T);
    T e[COUNT];
};

// rope_row in 16-byte pieces: thread t rotates the Lanes::COUNT pairs of chunk t, t + BLOCK, ... (the
// same arithmetic per element, so the same bits). Needs D/2, both row strides and both pointers in
// whole 16-byte pieces (rope_vectorizable).
template <typename T>
__device__ void rope_row_lanes(const RopeRows<T>& rows, int D, const float* cos_table, const float* sin_table) {
    constexpr int LANES = Lanes<T>::COUNT;
    const int half = D / 2, chunks_per_head = half / LANES;
    T* const out = rows.out + static_cast<size_t>(blockIdx.x) * rows.out_row;
    const T* const in = rows.in + static_cast<size_t>(blockIdx.x) * rows.in_row;
    const int chunks = rows.heads * chunks_per_head;
    for (int c = threadIdx.x; c < chunks; c += ROPE_BLOCK) {
        const int head = c / chunks_per_head;
        const int i = (c - head * chunks_per_head) * LANES;
        const int first = head * D + i;
        const Lanes<T> a = *reinterpret_cast<const Lanes<T>*>(in + first);
        const Lanes<T> b = *reinterpret_cast<const Lanes<T>*>(in + first + half);
        Lanes<T> ra, rb;
        SPIN_UNROLL
        for (int e = 0; e < LANES; ++e) {
            const float x1 = to_f32(a.e[e]), x2 = to_f32(b.e[e]);
            const float cs = cos_table[i + e], sn = sin_table[i + e];
            ra.e[e] = from_f32<T>(__fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, sn)));
            rb.e[e] = from_f32<T>(__fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sn)));
        }
        *reinterpret_cast<Lanes<T>*>(out + first) = ra;
        *reinterpret_cast<Lanes<T>*>(out + first + half) = rb;
    }
}

// Copies the heads of one (b, t) row unrotated (the v part of the split); LANES: in 16-byte
// pieces (rope_vectorizable), else element by element.
template <bool LANES, typename T>
__device__ void copy_row(const RopeRows<T>& rows, int D) {
    T* const out = rows.out + static_cast<size_t>(blockIdx.x) * rows.out_row;
    const T* const in = rows.in + static_cast<size_t>(blockIdx.x) * rows.in_row;
    const int count = rows.heads * D;
    if constexpr (LANES) {
        for (int c = threadIdx.x; c < count / Lanes<T>::COUNT; c += ROPE_BLOCK) {
            reinterpret_cast<Lanes<T>*>(out)[c] = reinterpret_cast<const Lanes<T>*>(in)[c];
        }
    } else {
        for (int e = threadIdx.x; e < count; e += ROPE_BLOCK) out[e] = in[e];
    }
}

// One block per (b, t): the D/2 cos and sin of its position are computed once into shared memory
// and serve the heads of `first` and then of `second` (k beside q; none when second.heads is 0);
// `copied` (v beside q and k; none when its heads is 0) is copied as it is. direction: 1 forward,
// -1 backward. LANES: every part moves in 16-byte pieces (rope_vectorizable).
template <typename T, bool LANES>
__global__ void __launch_bounds__(ROPE_BLOCK)
rope_kernel(RopeRows<T> first, RopeRows<T> second, RopeRows<T> copied, const int32_t* positions, int D, float theta,
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
    if constexpr (LANES) {
        rope_row_lanes(first, D, cos_table, sin_table);
        if (second.heads > 0) rope_row_lanes(second, D, cos_table, sin_table);
    } else {
        rope_row(first, D, cos_table, sin_table);
        if (second.heads > 0) rope_row(second, D, cos_table, sin_table);
    }
    if (copied.heads > 0) copy_row<LANES>(copied, D);
}

// Untyped pointers of one RopeRows, each with an element offset (where a part of a stacked row
// starts); the launch gives them the dtype's element type.
struct RowsArg {
    void* out;
    int64_t out_at;
    const void* in;
    int64_t in_at;
    int heads;
    int64_t out_row;
    int64_t in_row;
};

template <typename T>
RopeRows<T> typed(const RowsArg& a) {
    return {a.out ? static_cast<T*>(a.out) + a.out_at : nullptr,
            a.in ? static_cast<const T*>(a.in) + a.in_at : nullptr, a.heads, static_cast<int>(a.out_row),
            static_cast<int>(a.in_row)};
}

// Whether every part with heads can move in 16-byte pieces: D/2 and both row strides whole pieces,
// and both pointers 16-byte aligned.
bool rope_vectorizable(size_t element_bytes, int D, std::initializer_list<const RowsArg*> parts) {
    const int64_t lanes = static_cast<int64_t>(16 / element_bytes);
    if ((D / 2) % lanes != 0) return false;
    for (const RowsArg* r : parts) {
        if (r->heads == 0) continue;
        const auto out = reinterpret_cast<uintptr_t>(r->out) + static_cast<uintptr_t>(r->out_at) * element_bytes;
        const auto in = reinterpret_cast<uintptr_t>(r->in) + static_cast<uintptr_t>(r->in_at) * element_bytes;
        if (r->out_row % lanes != 0 || r->in_row % lanes != 0 || out % 16 != 0 || in % 16 != 0) return false;
    }
    return true;
}

template <typename T, bool LANES>
int launch_rope(int64_t rows, size_t shared_bytes, spin_stream_t stream, const RowsArg& first, const RowsArg& second,
                const RowsArg& copied, const int32_t* positions, int D, float theta, float direction) {
    auto* const kernel = rope_kernel<T, LANES>;  // a macro argument cannot hold the comma
    if (shared_bytes > DEFAULT_SHARED_LIMIT) {
        SPIN_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared_bytes)));
    }
    SPIN_LAUNCH(kernel, static_cast<unsigned int>(rows), ROPE_BLOCK, shared_bytes,
                spin::to_cuda(stream), typed<T>(first), typed<T>(second), typed<T>(copied), positions, D, theta,
                direction);
    SPIN_LAUNCH_CHECK(rope_kernel);
    return SPIN_OK;
}

// B*T rows of `first` rotated and, when their heads are not 0, of `second` rotated by the same
// positions and `copied` copied.
int rope(const char* call, spin_stream_t stream, int dtype, RowsArg first, RowsArg second, RowsArg copied,
         const int32_t* positions, int B, int T, int D, float theta, float direction) {
    if (B < 0 || T < 0 || first.heads < 0 || second.heads < 0 || copied.heads < 0 || D < 0 || D % 2 != 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "%s: need B, T, H, KVH >= 0 and an even D >= 0, got B=%d T=%d H=%d KVH=%d D=%d", call, B, T,
                          first.heads, second.heads, D);
    }
    if (B == 0 || T == 0 || (first.heads == 0 && second.heads == 0 && copied.heads == 0) || D == 0) return SPIN_OK;
    for (const RowsArg* rows : {&first, &second, &copied}) {
        if (rows->heads > 0 && (!rows->out || !rows->in)) {
            return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
        }
    }
    if (!positions) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL positions", call);
    const int64_t rows = static_cast<int64_t>(B) * T;
    // One block per row in the grid's x dimension; a row's elements are counted in int.
    bool too_large = rows > 0x7fffffff;
    for (const RowsArg* r : {&first, &second, &copied}) {
        too_large = too_large || static_cast<int64_t>(r->heads) * D > 0x7fffffff || r->out_row > 0x7fffffff ||
                    r->in_row > 0x7fffffff;
    }
    if (too_large) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: B=%d T=%d H=%d KVH=%d D=%d is too large", call, B, T, first.heads,
                          second.heads, D);
    }
    const size_t shared_bytes = static_cast<size_t>(D) * sizeof(float);
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        using T = decltype(element);
        if (rope_vectorizable(sizeof(T), D, {&first, &second, &copied})) {
            return launch_rope<T, true>(rows, shared_bytes, stream, first, second, copied, positions, D, theta,
                                        direction);
        }
        return launch_rope<T, false>(rows, shared_bytes, stream, first, second, copied, positions, D, theta,
                                     direction);
    });
}

// The rows of a [B,T,heads,D] tensor, rotated from in into out.
RowsArg dense(void* out, const void* in, int heads, int D) {
    const int64_t row = static_cast<int64_t>(heads) * D;
    return {out, 0, in, 0, heads, row, row};
}

constexpr RowsArg NONE = {nullptr, 0, nullptr, 0, 0, 0, 0};

// Stacked rows qkv [B,T,(H+2KVH)*D] (H query heads, KVH key heads, KVH value heads per row) against
// q [B,T,H,D], k and v [B,T,KVH,D]. Forward: stacked -> q, k, v; backward: dq, dk, dv -> stacked.
struct QkvRows {
    RowsArg q, k, v;
};

QkvRows split_rows(void* q, void* k, void* v, const void* qkv, int H, int KVH, int D) {
    const int64_t width = (static_cast<int64_t>(H) + 2 * static_cast<int64_t>(KVH)) * D;
    const int64_t q_row = static_cast<int64_t>(H) * D, kv_row = static_cast<int64_t>(KVH) * D;
    return {{q, 0, qkv, 0, H, q_row, width}, {k, 0, qkv, q_row, KVH, kv_row, width},
            {v, 0, qkv, q_row + kv_row, KVH, kv_row, width}};
}

QkvRows merge_rows(void* dqkv, const void* dq, const void* dk, const void* dv, int H, int KVH, int D) {
    const int64_t width = (static_cast<int64_t>(H) + 2 * static_cast<int64_t>(KVH)) * D;
    const int64_t q_row = static_cast<int64_t>(H) * D, kv_row = static_cast<int64_t>(KVH) * D;
    return {{dqkv, 0, dq, 0, H, width, q_row}, {dqkv, q_row, dk, 0, KVH, width, kv_row},
            {dqkv, q_row + kv_row, dv, 0, KVH, width, kv_row}};
}

}  // namespace

extern "C" {

int spin_rope_forward(spin_stream_t stream, int dtype, void* out, const void* in, const int32_t* positions, int B,
                      int T, int H, int D, float theta) {
    return rope("spin_rope_forward", stream, dtype, dense(out, in, H, D), NONE, NONE, positions, B, T, D, theta, 1.0f);
}

int spin_rope_backward(spin_stream_t stream, int dtype, void* dIn, const void* dOut, const int32_t* positions, int B,
                       int T, int H, int D, float theta) {
    return rope("spin_rope_backward", stream, dtype, dense(dIn, dOut, H, D), NONE, NONE, positions, B, T, D, theta,
                -1.0f);
}

int spin_qkv_rope_forward(spin_stream_t stream, int dtype, void* q, void* k, void* v, const void* qkv,
                          const int32_t* positions, int B, int T, int H, int KVH, int D, float theta) {
    if (H < 0 || KVH < 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_qkv_rope_forward: need H, KVH >= 0, got H=%d KVH=%d", H, KVH);
    }
    const QkvRows rows = split_rows(q, k, v, qkv, H, KVH, D);
    return rope("spin_qkv_rope_forward", stream, dtype, rows.q, rows.k, rows.v, positions, B, T, D, theta, 1.0f);
}

int spin_qkv_rope_backward(spin_stream_t stream, int dtype, void* dqkv, const void* dq, const void* dk,
                           const void* dv, const int32_t* positions, int B, int T, int H, int KVH, int D,
                           float theta) {
    if (H < 0 || KVH < 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_qkv_rope_backward: need H, KVH >= 0, got H=%d KVH=%d", H, KVH);
    }
    const QkvRows rows = merge_rows(dqkv, dq, dk, dv, H, KVH, D);
    return rope("spin_qkv_rope_backward", stream, dtype, rows.q, rows.k, rows.v, positions, B, T, D, theta, -1.0f);
}

}  // extern "C"
