// Causal grouped-query attention on fp32 or bf16 activations: the flash-style forward, its
// deterministic backward, and decoding over the paged KV cache, with their launchers. The reference
// semantics are java/spin/backend/Backend.java (attentionForward) and
// java/spin/backend/cpu/CpuAttention.java.
//
// Shapes: q, out, dOut, dq [B,T,H,D]; k, v, dk, dv [B,T,KVH,D]; keyMask [B,T]; lse, delta [B,H,T].
// q, k, v, out, dOut, dq, dk, dv, kCache and vCache are of the compute dtype, the element type E
// (dtype.cuh; E rather than T, the sequence length here); lse and delta are fp32. Tiles hold fp32 in
// shared memory (an element is widened once, as it is staged), so scores, softmax statistics, P.V,
// dS and the dq/dk/dv sums are all fp32, and an E result is rounded once, as it is stored; for
// E = float the arithmetic is the fp32 kernels' own.
// Query head h reads kv head g = h / (H/KVH). Query i of sequence b sees key j when
//   j <= i,  keyMask[b,j] != 0,  and with window W > 0:  j > i - W   (W keys including itself).
//
// forward:  s_ij = (q_i . k_j) / sqrt(D) over visible j;  lse_i = log sum_j exp(s_ij);
//           out_i = sum_j exp(s_ij - lse_i) v_j.  No visible key: out_i = 0, lse_i = -inf.
//           Computed with an online softmax over key tiles: m (running max), l (running sum of
//           exp(s - m)) and acc (running sum of exp(s - m) v); a new tile max m' rescales l and
//           acc by exp(m - m'); at the end out = acc / l, lse = m + log(l).
// backward: p_ij = exp(s_ij - lse_i) (0 when lse_i = -inf: such a query has no gradient),
//           delta_i = dOut_i . out_i  (= sum_j p_ij dp_ij),  dp_ij = dOut_i . v_j,
//           ds_ij = p_ij (dp_ij - delta_i) / sqrt(D);
//           dq_i = sum_j ds_ij k_j;  dk_j = sum_{h in group, i} ds_ij q_i;  dv_j = sum_{h in group, i} p_ij dOut_i.
// cached:   as the forward for one query over its sequence's cached positions p <= queryPos
//           (and p > queryPos - W), position p of sequence s at cache row
//           blockTable[s, p / blockSize] * blockSize + p % blockSize; kCache, vCache [R,KVH,D].
//
// Determinism: every output element is written by one thread, which adds its terms in a fixed
// order (increasing key for out and dq; kv group heads in order, then increasing query, for dk and
// dv); the one cross-lane reduction (decoding's warp max and sum) is a fixed butterfly. Tile sizes
// depend on D only, never on the device, so the same shapes give the same bits on every GPU.
//
// Block shapes (128 threads each; n = 32 query rows and keys per tile for D <= 128, else 16):
//   forward  grid B*H*ceil(T/n), shared q, k, v, acc [n][D+1] + scores [n][n+1] (69 KiB at D=128);
//   delta    grid ceil(B*T*H/128), thread per row, no shared memory;
//   dq       grid B*H*ceil(T/n), shared q, dOut, k, v, dq [n][D+1] + ds [n][n+1] (85 KiB at D=128);
//   dk/dv    grid B*KVH*ceil(T/n), shared k, v, q, dOut, dk, dv [n][D+1] + p, ds [n][n+1] (105 KiB);
//   cached   grid M*H, shared q [D] + one chunk of 32 keys [32][D+1] (at most 34 KiB).
#include <math.h>

#include <algorithm>
#include <atomic>

#include "attention_mma.cuh"
#include "block_reduce.cuh"
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int ATTENTION_BLOCK = 128;
constexpr int MAX_HEAD_DIM = 256;
// Shared memory (static plus dynamic) a kernel may use without opting in to more.
constexpr size_t DEFAULT_SHARED_LIMIT = 48 * 1024;
// Cached decoding scores one chunk of positions per lane of warp 0.
constexpr int DECODE_CHUNK = WARP_SIZE;
// Output columns each decode thread owns: D <= 256 over 128 threads.
constexpr int DECODE_COLUMNS = MAX_HEAD_DIM / ATTENTION_BLOCK;

// Query rows per query tile and keys per key tile (one number for both, so the tile loops stay
// simple). 16 above D = 128 keeps the backward's six [n][D] tiles within sm_80's 163 KiB.
int tile_rows(int D) { return D <= 128 ? 32 : 16; }

// Everything a tiled kernel needs about the problem; n is tile_rows(D).
struct AttentionShape {
    int T, H, KVH, D, window, n;
    float scale;
};

// Shared-memory tiles hold rows of D floats with a leading dimension of D + 1 (odd, D being even):
// a warp reading one element from each of 32 rows then touches 32 different banks.
__device__ __forceinline__ int tile_ld(int D) { return D + 1; }

__device__ __forceinline__ bool causal_window_visible(int i, int j, int window) {
    return j <= i && (window == 0 || j > i - window);
}

__device__ __forceinline__ float warp_max(float value) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
    }
    return value;
}

__device__ __forceinline__ float warp_sum(float value) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}

// a . b in fp32, columns in order; A and B are float (tiles) or the compute dtype (global rows).
template <typename A, typename B>
__device__ __forceinline__ float dot_row(const A* a, const B* b, int D) {
    float sum = 0.0f;
    for (int d = 0; d < D; ++d) sum += to_f32(a[d]) * to_f32(b[d]);
    return sum;
}

// Copies `rows` rows of D elements (global rows `stride` apart), widened to fp32, into an [n][ld]
// tile and zeroes the rest, so that no later read of the tile sees uninitialised shared memory.
template <typename E>
__device__ __forceinline__ void load_rows(float* tile, const E* first_row, size_t stride, int rows, int n, int D) {
    const int ld = tile_ld(D);
    for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) {
        const int r = e / D, c = e % D;
        tile[r * ld + c] = r < rows ? to_f32(first_row[static_cast<size_t>(r) * stride + c]) : 0.0f;
    }
}

size_t forward_shared_floats(int n, int D) {
    return 4 * static_cast<size_t>(n) * (D + 1) + static_cast<size_t>(n) * (n + 1) + 3 * static_cast<size_t>(n);
}

// One block per (b, h, tile of n query rows), blockIdx.x = (b * H + h) * tiles + tile. Keys stream
// through shared memory n at a time from the first key the tile's first query may see to the
// tile's last query; tiles wholly before the window are never visited. Per key tile: scores
// (thread per (row, key)), softmax statistics (thread per row), then the rescaled accumulator
// (thread per (row, column)). Only [n][n] scores ever exist.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK)
attention_forward_kernel(E* out, float* lse, const E* q, const E* k, const E* v, const int32_t* keyMask,
                         AttentionShape shape) {
    SPIN_DYNAMIC_SHARED(float, shared);
    const int n = shape.n, D = shape.D, T = shape.T, ld = tile_ld(D);
    float* q_tile = shared;               // [n][ld]
    float* k_tile = q_tile + n * ld;      // [n][ld]
    float* v_tile = k_tile + n * ld;      // [n][ld]
    float* acc = v_tile + n * ld;         // [n][ld]
    float* scores = acc + n * ld;         // [n][n + 1]: scores, then exp(score - max)
    float* row_max = scores + n * (n + 1);  // [n]
    float* row_sum = row_max + n;           // [n]
    float* row_rescale = row_sum + n;       // [n]

    const int tiles = (T + n - 1) / n;
    const int tile = blockIdx.x % tiles;
    const int h = (blockIdx.x / tiles) % shape.H;
    const int b = blockIdx.x / (tiles * shape.H);
    const int g = h / (shape.H / shape.KVH);
    const int i0 = tile * n, rows = min(n, T - i0);
    const size_t q_stride = static_cast<size_t>(shape.H) * D, kv_stride = static_cast<size_t>(shape.KVH) * D;
    const E* q_head = q + (static_cast<size_t>(b) * T * shape.H + h) * D;  // row t at t * q_stride
    const E* k_head = k + (static_cast<size_t>(b) * T * shape.KVH + g) * D;
    const E* v_head = v + (static_cast<size_t>(b) * T * shape.KVH + g) * D;
    const int32_t* mask = keyMask + static_cast<size_t>(b) * T;

    load_rows(q_tile, q_head + i0 * q_stride, q_stride, rows, n, D);
    for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) acc[(e / D) * ld + e % D] = 0.0f;
    for (int r = threadIdx.x; r < n; r += ATTENTION_BLOCK) {
        row_max[r] = -INFINITY;
        row_sum[r] = 0.0f;
    }

    const int first_key = shape.window > 0 ? max(0, i0 - shape.window + 1) : 0;
    const int key_end = i0 + rows;  // causal: no query of the tile sees a later key
    for (int j0 = first_key; j0 < key_end; j0 += n) {
        const int cols = min(n, key_end - j0);
        __syncthreads();  // the previous key tile's readers are done with k, v and the scores
        load_rows(k_tile, k_head + j0 * kv_stride, kv_stride, cols, n, D);
        load_rows(v_tile, v_head + j0 * kv_stride, kv_stride, cols, n, D);
        __syncthreads();

        for (int e = threadIdx.x; e < n * n; e += ATTENTION_BLOCK) {
            const int r = e / n, c = e % n, i = i0 + r, j = j0 + c;
            float score = -INFINITY;
            if (r < rows && c < cols && causal_window_visible(i, j, shape.window) && mask[j] != 0) {
                score = dot_row(q_tile + r * ld, k_tile + c * ld, D) * shape.scale;
            }
            scores[r * (n + 1) + c] = score;
        }
        __syncthreads();

        // Thread r owns row r's statistics (at most 32 keys, added in key order): a row is short,
        // the order is plain, and the emulator runs no warp rendezvous per row (a shuffle there
        // costs a switch through all 32 lanes' fibers).
        for (int r = threadIdx.x; r < n; r += ATTENTION_BLOCK) {
            float* row = scores + r * (n + 1);
            const float old_max = row_max[r];
            float new_max = old_max;
            for (int c = 0; c < cols; ++c) new_max = fmaxf(new_max, row[c]);
            // A row that has seen no visible key yet keeps max -inf, where exp(s - max) would be
            // exp(-inf + inf) = NaN; its terms are zero and there is nothing to rescale.
            const bool none = new_max == -INFINITY;
            float sum = 0.0f;
            for (int c = 0; c < cols; ++c) {
                const float p = none ? 0.0f : expf(row[c] - new_max);
                row[c] = p;
                sum += p;
            }
            const float rescale = none ? 1.0f : expf(old_max - new_max);  // 0 on a row's first visible key
            row_max[r] = new_max;
            row_sum[r] = row_sum[r] * rescale + sum;
            row_rescale[r] = rescale;
        }
        __syncthreads();

        for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) {
            const int r = e / D, c = e % D;
            const float* p = scores + r * (n + 1);
            float a = acc[r * ld + c] * row_rescale[r];
            for (int jj = 0; jj < cols; ++jj) a += p[jj] * v_tile[jj * ld + c];
            acc[r * ld + c] = a;
        }
    }
    __syncthreads();

    E* out_head = out + (static_cast<size_t>(b) * T * shape.H + h) * D;
    for (int e = threadIdx.x; e < rows * D; e += ATTENTION_BLOCK) {
        const int r = e / D, c = e % D;
        const float l = row_sum[r];
        out_head[(i0 + r) * q_stride + c] = from_f32<E>(l > 0.0f ? acc[r * ld + c] * (1.0f / l) : 0.0f);
    }
    float* lse_head = lse + (static_cast<size_t>(b) * shape.H + h) * T;
    for (int r = threadIdx.x; r < rows; r += ATTENTION_BLOCK) {
        // l >= 1 once any key is visible (the maximum's own term is exp(0)), so l = 0 means none.
        lse_head[i0 + r] = row_sum[r] > 0.0f ? row_max[r] + logf(row_sum[r]) : -INFINITY;
    }
}

// delta[b,h,t] = dOut[b,t,h,:] . out[b,t,h,:]: one thread per (b,t,h) row, columns in order. A
// light pass (2 reads per element), so it is kept plain rather than spread over a warp.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK)
attention_delta_kernel(float* delta, const E* dOut, const E* out, int rows, int T, int H, int D) {
    const int row = blockIdx.x * ATTENTION_BLOCK + threadIdx.x;
    if (row >= rows) return;
    const float sum = dot_row(dOut + static_cast<size_t>(row) * D, out + static_cast<size_t>(row) * D, D);
    const int h = row % H, t = (row / H) % T, b = row / (H * T);
    delta[(static_cast<size_t>(b) * H + h) * T + t] = sum;
}

size_t dq_shared_floats(int n, int D) {
    return 5 * static_cast<size_t>(n) * (D + 1) + static_cast<size_t>(n) * (n + 1) + 2 * static_cast<size_t>(n);
}

// dq: the forward's grid and key loop. Per key tile, thread per (row, key) recomputes p from the
// saved lse and forms ds; then thread per (row, column) adds ds K into its dq element, keys in
// increasing order. At least 2 blocks per SM, what its 85 KiB of shared memory allows at D = 128:
// with no minimum, ptxas aims at about 40 registers and spills the bf16 kernel's on sm_80.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK, 2)
attention_dq_kernel(E* dq, const E* dOut, const E* q, const E* k, const E* v, const int32_t* keyMask,
                    const float* lse, const float* delta, AttentionShape shape) {
    SPIN_DYNAMIC_SHARED(float, shared);
    const int n = shape.n, D = shape.D, T = shape.T, ld = tile_ld(D);
    float* q_tile = shared;               // [n][ld]
    float* dout_tile = q_tile + n * ld;   // [n][ld]
    float* k_tile = dout_tile + n * ld;   // [n][ld]
    float* v_tile = k_tile + n * ld;      // [n][ld]
    float* acc = v_tile + n * ld;         // [n][ld]
    float* ds = acc + n * ld;             // [n][n + 1]
    float* row_lse = ds + n * (n + 1);    // [n]
    float* row_delta = row_lse + n;       // [n]

    const int tiles = (T + n - 1) / n;
    const int tile = blockIdx.x % tiles;
    const int h = (blockIdx.x / tiles) % shape.H;
    const int b = blockIdx.x / (tiles * shape.H);
    const int g = h / (shape.H / shape.KVH);
    const int i0 = tile * n, rows = min(n, T - i0);
    const size_t q_stride = static_cast<size_t>(shape.H) * D, kv_stride = static_cast<size_t>(shape.KVH) * D;
    const size_t q_offset = (static_cast<size_t>(b) * T * shape.H + h) * D;
    const E* k_head = k + (static_cast<size_t>(b) * T * shape.KVH + g) * D;
    const E* v_head = v + (static_cast<size_t>(b) * T * shape.KVH + g) * D;
    const int32_t* mask = keyMask + static_cast<size_t>(b) * T;
    const size_t stat_offset = (static_cast<size_t>(b) * shape.H + h) * T;

    load_rows(q_tile, q + q_offset + i0 * q_stride, q_stride, rows, n, D);
    load_rows(dout_tile, dOut + q_offset + i0 * q_stride, q_stride, rows, n, D);
    for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) acc[(e / D) * ld + e % D] = 0.0f;
    for (int r = threadIdx.x; r < n; r += ATTENTION_BLOCK) {
        row_lse[r] = r < rows ? lse[stat_offset + i0 + r] : -INFINITY;
        row_delta[r] = r < rows ? delta[stat_offset + i0 + r] : 0.0f;
    }

    const int first_key = shape.window > 0 ? max(0, i0 - shape.window + 1) : 0;
    const int key_end = i0 + rows;
    for (int j0 = first_key; j0 < key_end; j0 += n) {
        const int cols = min(n, key_end - j0);
        __syncthreads();
        load_rows(k_tile, k_head + j0 * kv_stride, kv_stride, cols, n, D);
        load_rows(v_tile, v_head + j0 * kv_stride, kv_stride, cols, n, D);
        __syncthreads();

        for (int e = threadIdx.x; e < n * n; e += ATTENTION_BLOCK) {
            const int r = e / n, c = e % n, i = i0 + r, j = j0 + c;
            float grad = 0.0f;
            // lse = -inf: the query saw no key, so it has no probabilities and no gradient.
            if (r < rows && c < cols && causal_window_visible(i, j, shape.window) && mask[j] != 0 &&
                row_lse[r] != -INFINITY) {
                const float p = expf(dot_row(q_tile + r * ld, k_tile + c * ld, D) * shape.scale - row_lse[r]);
                const float dp = dot_row(dout_tile + r * ld, v_tile + c * ld, D);
                grad = p * (dp - row_delta[r]) * shape.scale;
            }
            ds[r * (n + 1) + c] = grad;
        }
        __syncthreads();

        for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) {
            const int r = e / D, c = e % D;
            const float* ds_row = ds + r * (n + 1);
            float a = acc[r * ld + c];
            for (int jj = 0; jj < cols; ++jj) a += ds_row[jj] * k_tile[jj * ld + c];
            acc[r * ld + c] = a;
        }
    }
    __syncthreads();

    E* dq_head = dq + q_offset;
    for (int e = threadIdx.x; e < rows * D; e += ATTENTION_BLOCK) {
        const int r = e / D, c = e % D;
        dq_head[(i0 + r) * q_stride + c] = from_f32<E>(acc[r * ld + c]);
    }
}

size_t dkdv_shared_floats(int n, int D) {
    return 6 * static_cast<size_t>(n) * (D + 1) + 2 * static_cast<size_t>(n) * (n + 1) + 2 * static_cast<size_t>(n);
}

// dk, dv: one block per (b, kv head g, tile of n keys), blockIdx.x = (b * KVH + g) * tiles + tile,
// so each block owns its keys' dk and dv rows outright. It loops over the group's query heads in
// order and, for each, over the query tiles that can see its keys (from the tile's first key to
// the last query inside the window of its last key); per query tile, thread per (key, query)
// forms p and ds, then thread per (key, column) adds p dOut and ds Q, queries in increasing order.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK)
attention_dkdv_kernel(E* dk, E* dv, const E* dOut, const E* q, const E* k, const E* v, const int32_t* keyMask,
                      const float* lse, const float* delta, AttentionShape shape) {
    SPIN_DYNAMIC_SHARED(float, shared);
    const int n = shape.n, D = shape.D, T = shape.T, ld = tile_ld(D);
    float* k_tile = shared;               // [n][ld]
    float* v_tile = k_tile + n * ld;      // [n][ld]
    float* q_tile = v_tile + n * ld;      // [n][ld]
    float* dout_tile = q_tile + n * ld;   // [n][ld]
    float* dk_acc = dout_tile + n * ld;   // [n][ld]
    float* dv_acc = dk_acc + n * ld;      // [n][ld]
    float* p_tile = dv_acc + n * ld;      // [n keys][n + 1]
    float* ds_tile = p_tile + n * (n + 1);  // [n keys][n + 1]
    float* row_lse = ds_tile + n * (n + 1); // [n queries]
    float* row_delta = row_lse + n;         // [n queries]

    const int tiles = (T + n - 1) / n;
    const int tile = blockIdx.x % tiles;
    const int g = (blockIdx.x / tiles) % shape.KVH;
    const int b = blockIdx.x / (tiles * shape.KVH);
    const int group = shape.H / shape.KVH;
    const int j0 = tile * n, cols = min(n, T - j0);
    const size_t q_stride = static_cast<size_t>(shape.H) * D, kv_stride = static_cast<size_t>(shape.KVH) * D;
    const size_t kv_offset = (static_cast<size_t>(b) * T * shape.KVH + g) * D;
    const int32_t* mask = keyMask + static_cast<size_t>(b) * T;

    load_rows(k_tile, k + kv_offset + j0 * kv_stride, kv_stride, cols, n, D);
    load_rows(v_tile, v + kv_offset + j0 * kv_stride, kv_stride, cols, n, D);
    for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) {
        dk_acc[(e / D) * ld + e % D] = 0.0f;
        dv_acc[(e / D) * ld + e % D] = 0.0f;
    }

    // Query i sees key j only when j <= i < j + window.
    // In 64 bits: a window near INT_MAX (a config's "no window in practice") must not wrap.
    const int query_end = shape.window > 0
                              ? static_cast<int>(min(static_cast<long long>(T),
                                                     static_cast<long long>(j0) + cols - 1 + shape.window))
                              : T;
    for (int h = g * group; h < (g + 1) * group; ++h) {
        const size_t q_offset = (static_cast<size_t>(b) * T * shape.H + h) * D;
        const size_t stat_offset = (static_cast<size_t>(b) * shape.H + h) * T;
        for (int i0 = j0; i0 < query_end; i0 += n) {
            const int rows = min(n, query_end - i0);
            __syncthreads();  // the previous query tile's readers are done
            load_rows(q_tile, q + q_offset + i0 * q_stride, q_stride, rows, n, D);
            load_rows(dout_tile, dOut + q_offset + i0 * q_stride, q_stride, rows, n, D);
            for (int r = threadIdx.x; r < n; r += ATTENTION_BLOCK) {
                row_lse[r] = r < rows ? lse[stat_offset + i0 + r] : -INFINITY;
                row_delta[r] = r < rows ? delta[stat_offset + i0 + r] : 0.0f;
            }
            __syncthreads();

            for (int e = threadIdx.x; e < n * n; e += ATTENTION_BLOCK) {
                const int jj = e / n, r = e % n, i = i0 + r, j = j0 + jj;
                float p = 0.0f, grad = 0.0f;
                if (jj < cols && r < rows && causal_window_visible(i, j, shape.window) && mask[j] != 0 &&
                    row_lse[r] != -INFINITY) {
                    p = expf(dot_row(q_tile + r * ld, k_tile + jj * ld, D) * shape.scale - row_lse[r]);
                    const float dp = dot_row(dout_tile + r * ld, v_tile + jj * ld, D);
                    grad = p * (dp - row_delta[r]) * shape.scale;
                }
                p_tile[jj * (n + 1) + r] = p;
                ds_tile[jj * (n + 1) + r] = grad;
            }
            __syncthreads();

            for (int e = threadIdx.x; e < n * D; e += ATTENTION_BLOCK) {
                const int jj = e / D, c = e % D;
                const float* p_row = p_tile + jj * (n + 1);
                const float* ds_row = ds_tile + jj * (n + 1);
                float a_v = dv_acc[jj * ld + c], a_k = dk_acc[jj * ld + c];
                for (int r = 0; r < rows; ++r) {
                    a_v += p_row[r] * dout_tile[r * ld + c];
                    a_k += ds_row[r] * q_tile[r * ld + c];
                }
                dv_acc[jj * ld + c] = a_v;
                dk_acc[jj * ld + c] = a_k;
            }
        }
    }
    __syncthreads();

    for (int e = threadIdx.x; e < cols * D; e += ATTENTION_BLOCK) {
        const int jj = e / D, c = e % D;
        const size_t at = kv_offset + (j0 + jj) * kv_stride + c;
        dk[at] = from_f32<E>(dk_acc[jj * ld + c]);
        dv[at] = from_f32<E>(dv_acc[jj * ld + c]);
    }
}

struct DecodeShape {
    int H, KVH, D, R, S, maxBlocks, blockSize, window;
    float scale;
};

// One block per (token m, head h), blockIdx.x = m * H + h. Positions stream in chunks of 32: the
// chunk's cache rows are looked up once, its keys staged in shared memory, warp 0 scores one key
// per lane and updates the online softmax, then every thread adds the weighted value rows into
// its own output columns (c = thread, thread + 128), reading V straight from global memory
// (consecutive threads, consecutive columns). A token whose sequence, position or blocks are
// outside the table (a caller's bug) gets NaN rather than a read through a bad row.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK)
attention_cached_kernel(E* out, const E* q, const E* kCache, const E* vCache, const int32_t* blockTable,
                        const int32_t* querySeq, const int32_t* queryPos, DecodeShape shape) {
    SPIN_DYNAMIC_SHARED(float, shared);
    __shared__ long long chunk_rows[DECODE_CHUNK];
    __shared__ float chunk_p[DECODE_CHUNK];
    __shared__ float chunk_rescale;
    __shared__ float total_sum;
    __shared__ int bad_block;
    const int D = shape.D, ld = tile_ld(D), bs = shape.blockSize;
    float* q_row = shared;            // [D]
    float* k_tile = q_row + D;        // [DECODE_CHUNK][ld]

    const int tid = threadIdx.x;
    const int m = blockIdx.x / shape.H, h = blockIdx.x % shape.H;
    const int g = h / (shape.H / shape.KVH);
    const int seq = querySeq[m], pos = queryPos[m];
    E* out_row = out + (static_cast<size_t>(m) * shape.H + h) * D;
    const int first = shape.window > 0 ? max(0, pos - shape.window + 1) : 0;

    // Uniform over the block, so leaving early skips no barrier another thread waits at.
    if (seq < 0 || seq >= shape.S || pos < 0 || pos / bs >= shape.maxBlocks) {
        for (int c = threadIdx.x; c < D; c += ATTENTION_BLOCK) out_row[c] = from_f32<E>(NAN);
        return;
    }
    const int32_t* table_row = blockTable + static_cast<size_t>(seq) * shape.maxBlocks;
    if (threadIdx.x == 0) bad_block = 0;
    const E* q_src = q + (static_cast<size_t>(m) * shape.H + h) * D;
    for (int c = threadIdx.x; c < D; c += ATTENTION_BLOCK) q_row[c] = to_f32(q_src[c]);
    __syncthreads();
    for (int blk = first / bs + tid; blk <= pos / bs; blk += ATTENTION_BLOCK) {
        // A block outside the cache's R rows would be read out of bounds.
        const int32_t block = table_row[blk];
        if (block < 0 || static_cast<long long>(block) * bs + bs > shape.R) bad_block = 1;  // all store the same value
    }
    __syncthreads();
    if (bad_block) {
        for (int c = threadIdx.x; c < D; c += ATTENTION_BLOCK) out_row[c] = from_f32<E>(NAN);
        return;
    }

    const int lane = tid % WARP_SIZE, warp = tid / WARP_SIZE;
    float acc[DECODE_COLUMNS];
    for (int i = 0; i < DECODE_COLUMNS; ++i) acc[i] = 0.0f;
    float run_max = -INFINITY, run_sum = 0.0f;  // meaningful in warp 0 only
    for (int p0 = first; p0 <= pos; p0 += DECODE_CHUNK) {
        const int count = min(DECODE_CHUNK, pos + 1 - p0);
        __syncthreads();  // the previous chunk's readers are done with its rows, keys and weights
        if (tid < count) {
            const int p = p0 + tid;
            chunk_rows[tid] = static_cast<long long>(table_row[p / bs]) * bs + p % bs;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < count * D; e += ATTENTION_BLOCK) {
            const int jj = e / D, c = e % D;
            k_tile[jj * ld + c] = to_f32(kCache[(static_cast<size_t>(chunk_rows[jj]) * shape.KVH + g) * D + c]);
        }
        __syncthreads();
        if (warp == 0) {
            const float score = lane < count ? dot_row(q_row, k_tile + lane * ld, D) * shape.scale : -INFINITY;
            // Every query sees its own position, so the chunk max is finite.
            const float new_max = fmaxf(run_max, warp_max(score));
            const float p = lane < count ? expf(score - new_max) : 0.0f;
            const float rescale = expf(run_max - new_max);  // 0 on the first chunk
            run_sum = run_sum * rescale + warp_sum(p);
            run_max = new_max;
            chunk_p[lane] = p;
            if (lane == 0) chunk_rescale = rescale;
        }
        __syncthreads();
        const float rescale = chunk_rescale;
        for (int i = 0; i < DECODE_COLUMNS; ++i) {  // constant trip count: acc stays in registers
            const int c = tid + i * ATTENTION_BLOCK;
            if (c < D) {
                float a = acc[i] * rescale;
                for (int jj = 0; jj < count; ++jj) {
                    a += chunk_p[jj] * to_f32(vCache[(static_cast<size_t>(chunk_rows[jj]) * shape.KVH + g) * D + c]);
                }
                acc[i] = a;
            }
        }
    }
    if (threadIdx.x == 0) total_sum = run_sum;
    __syncthreads();
    const float inv = 1.0f / total_sum;
    for (int i = 0; i < DECODE_COLUMNS; ++i) {
        const int c = tid + i * ATTENTION_BLOCK;
        if (c < D) out_row[c] = from_f32<E>(acc[i] * inv);
    }
}

// ---- decoding: one block per (token, kv head, split) -----------------------------------------
// The simple cached kernel above reads each K/V row once per query head; here a block holds the
// whole GQA group of its kv head (G = H/KVH query rows), so a row is read from memory once per
// group. Keys stream through shared memory DECODE_TILE at a time, widened to fp32 as they are
// staged (16-byte loads where rows are 16-byte aligned): scores thread per (group row, key),
// softmax statistics thread per group row, P.V thread per (group row, column), as the forward
// kernel does. With splits > 1 (flash-decoding, for too few tokens x kv heads to fill the GPU)
// split s takes the s-th slice of the token's visible positions, slices being whole tiles, and
// leaves its unnormalised (max, sum, acc) in scratch; attention_decode_combine_kernel merges the
// slices in split order. Every sum has a fixed order, so the bits depend on the shape and the
// split count only.
constexpr int DECODE_TILE = 32;
constexpr int MAX_DECODE_SPLITS = 64;
// Positions below which one more split is not worth its partial's write and the combine.
constexpr int DECODE_MIN_SPLIT_KEYS = 256;
// Beyond this much shared memory (large groups at large D) the simple kernel is used instead.
constexpr size_t DECODE_SHARED_LIMIT = 96 * 1024;

// The 16 bytes as 4 fp32 or 8 bf16 values, widened; the pointer only picks the overload. Word
// arithmetic rather than a union keeps the pack in registers.
__device__ __forceinline__ void unpack_to_f32(const Pack16& pack, float* dst, const float*) {
    for (int i = 0; i < 4; ++i) dst[i] = __uint_as_float(pack.words[i]);
}

__device__ __forceinline__ void unpack_to_f32(const Pack16& pack, float* dst, const bf16*) {
    for (int i = 0; i < 4; ++i) {  // little-endian: the lower half is the earlier element
        dst[2 * i] = bf16_bits_to_f32(static_cast<uint16_t>(pack.words[i] & 0xffffu));
        dst[2 * i + 1] = bf16_bits_to_f32(static_cast<uint16_t>(pack.words[i] >> 16));
    }
}

size_t decode_shared_floats(int G, int D) {
    return 2 * static_cast<size_t>(G) * D + static_cast<size_t>(DECODE_TILE) * (2 * D + 1) +
           static_cast<size_t>(G) * (DECODE_TILE + 1) + 3 * static_cast<size_t>(G);
}

// Stages `count` cache rows (kv head g of rows[0..count)) into tile rows ld floats apart. Rows past
// count are left as they are: no reader looks past count.
template <typename E>
__device__ __forceinline__ void stage_cache_rows(float* tile, int ld, const E* cache, const long long* rows, int count,
                                                 int KVH, int g, int D, bool vectorised) {
    if (vectorised) {
        constexpr int VEC = static_cast<int>(sizeof(Pack16) / sizeof(E));
        const int per_row = D / VEC;
        for (int e = threadIdx.x; e < count * per_row; e += ATTENTION_BLOCK) {
            const int jj = e / per_row, c = (e % per_row) * VEC;
            const Pack16 pack =
                *reinterpret_cast<const Pack16*>(cache + (static_cast<size_t>(rows[jj]) * KVH + g) * D + c);
            unpack_to_f32(pack, tile + jj * ld + c, static_cast<const E*>(nullptr));
        }
    } else {
        for (int e = threadIdx.x; e < count * D; e += ATTENTION_BLOCK) {
            const int jj = e / D, c = e % D;
            tile[jj * ld + c] = to_f32(cache[(static_cast<size_t>(rows[jj]) * KVH + g) * D + c]);
        }
    }
}

// blockIdx.x = (m * KVH + g) * splits + split. out [M,H,D] when splits == 1; otherwise stats
// [M,H,splits,2] (max, sum; max NaN for a token the table cannot serve) and partial_acc
// [M,H,splits,D]. The bad-token test covers all of the token's visible blocks in every split,
// so the splits agree on it.
// At least 4 blocks per SM (about 37 KiB of shared memory each for Mistral's group of 4 at D = 128):
// with no minimum, ptxas for sm_80 settles at 56-64 registers and spills.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK, 4)
attention_decode_kernel(E* out, float* stats, float* partial_acc, const E* q, const E* kCache, const E* vCache,
                        const int32_t* blockTable, const int32_t* querySeq, const int32_t* queryPos, DecodeShape shape,
                        int splits, bool vectorised) {
    SPIN_DYNAMIC_SHARED(float, shared);
    __shared__ long long rows[DECODE_TILE];
    __shared__ int bad_block;
    const int D = shape.D, G = shape.H / shape.KVH, ld = D + 1, bs = shape.blockSize;
    float* q_tile = shared;                        // [G][D]
    float* acc = q_tile + G * D;                   // [G][D]
    float* k_tile = acc + G * D;                   // [DECODE_TILE][ld]: odd ld, so a key per thread is conflict-free
    float* v_tile = k_tile + DECODE_TILE * ld;     // [DECODE_TILE][D]: read along D by consecutive threads
    float* scores = v_tile + DECODE_TILE * D;      // [G][DECODE_TILE + 1]
    float* row_max = scores + G * (DECODE_TILE + 1);  // [G]
    float* row_sum = row_max + G;                     // [G]
    float* row_rescale = row_sum + G;                 // [G]

    const int split = blockIdx.x % splits;
    const int g = (blockIdx.x / splits) % shape.KVH;
    const int m = blockIdx.x / (splits * shape.KVH);
    const size_t head0 = static_cast<size_t>(m) * shape.H + static_cast<size_t>(g) * G;  // the group's first (m, h)
    const int seq = querySeq[m], pos = queryPos[m];
    const int first = shape.window > 0 ? max(0, pos - shape.window + 1) : 0;

    if (threadIdx.x == 0) bad_block = 0;
    __syncthreads();
    // Uniform over the block, so leaving early skips no barrier another thread waits at.
    bool bad = seq < 0 || seq >= shape.S || pos < 0 || pos / bs >= shape.maxBlocks;
    if (!bad) {
        const int32_t* table_row = blockTable + static_cast<size_t>(seq) * shape.maxBlocks;
        for (int blk = first / bs + threadIdx.x; blk <= pos / bs; blk += ATTENTION_BLOCK) {
            const int32_t block = table_row[blk];
            if (block < 0 || static_cast<long long>(block) * bs + bs > shape.R) bad_block = 1;  // all store the same value
        }
        __syncthreads();
        bad = bad_block != 0;
    }
    if (bad) {
        if (splits == 1) {
            for (int e = threadIdx.x; e < G * D; e += ATTENTION_BLOCK) out[head0 * D + e] = from_f32<E>(NAN);
        } else {
            for (int r = threadIdx.x; r < G; r += ATTENTION_BLOCK) {
                float* st = stats + ((head0 + r) * splits + split) * 2;
                st[0] = NAN;
                st[1] = 0.0f;
            }
        }
        return;
    }
    const int32_t* table_row = blockTable + static_cast<size_t>(seq) * shape.maxBlocks;

    // Slices of whole tiles, so a slice's tiles start where the unsplit kernel's do.
    const int visible = pos + 1 - first;
    const int per_split = (visible + splits - 1) / splits;
    const int slice = (per_split + DECODE_TILE - 1) / DECODE_TILE * DECODE_TILE;
    const int begin = first + min(visible, split * slice);
    const int end = min(pos + 1, begin + slice);

    const E* q_src = q + head0 * D;
    for (int e = threadIdx.x; e < G * D; e += ATTENTION_BLOCK) {
        q_tile[e] = to_f32(q_src[e]);
        acc[e] = 0.0f;
    }
    for (int r = threadIdx.x; r < G; r += ATTENTION_BLOCK) {
        row_max[r] = -INFINITY;
        row_sum[r] = 0.0f;
    }

    for (int p0 = begin; p0 < end; p0 += DECODE_TILE) {
        const int count = min(DECODE_TILE, end - p0);
        __syncthreads();  // the previous tile's readers are done with its rows, keys, values and weights
        const int tid = static_cast<int>(threadIdx.x);
        if (tid < count) {
            const int p = p0 + tid;
            rows[tid] = static_cast<long long>(table_row[p / bs]) * bs + p % bs;
        }
        __syncthreads();
        stage_cache_rows(k_tile, ld, kCache, rows, count, shape.KVH, g, D, vectorised);
        stage_cache_rows(v_tile, D, vCache, rows, count, shape.KVH, g, D, vectorised);
        __syncthreads();

        for (int e = threadIdx.x; e < G * DECODE_TILE; e += ATTENTION_BLOCK) {
            const int r = e / DECODE_TILE, c = e % DECODE_TILE;
            scores[r * (DECODE_TILE + 1) + c] =
                c < count ? dot_row(q_tile + r * D, k_tile + c * ld, D) * shape.scale : -INFINITY;
        }
        __syncthreads();

        for (int r = threadIdx.x; r < G; r += ATTENTION_BLOCK) {
            float* row = scores + r * (DECODE_TILE + 1);
            const float old_max = row_max[r];
            float new_max = old_max;
            for (int c = 0; c < count; ++c) new_max = fmaxf(new_max, row[c]);
            float sum = 0.0f;
            for (int c = 0; c < count; ++c) {
                const float p = expf(row[c] - new_max);  // every position of the slice is visible: new_max is finite
                row[c] = p;
                sum += p;
            }
            const float rescale = expf(old_max - new_max);  // 0 on the slice's first tile
            row_max[r] = new_max;
            row_sum[r] = row_sum[r] * rescale + sum;
            row_rescale[r] = rescale;
        }
        __syncthreads();

        for (int e = threadIdx.x; e < G * D; e += ATTENTION_BLOCK) {
            const int r = e / D, c = e % D;
            const float* p = scores + r * (DECODE_TILE + 1);
            float a = acc[e] * row_rescale[r];
            for (int jj = 0; jj < count; ++jj) a += p[jj] * v_tile[jj * D + c];
            acc[e] = a;
        }
    }
    __syncthreads();

    if (splits == 1) {
        // The token sees its own position, so the sum is at least 1.
        for (int e = threadIdx.x; e < G * D; e += ATTENTION_BLOCK) {
            out[head0 * D + e] = from_f32<E>(acc[e] * (1.0f / row_sum[e / D]));
        }
    } else {
        for (int e = threadIdx.x; e < G * D; e += ATTENTION_BLOCK) {
            const int r = e / D, c = e % D;
            partial_acc[((head0 + r) * splits + split) * D + c] = acc[e];
        }
        for (int r = threadIdx.x; r < G; r += ATTENTION_BLOCK) {
            float* st = stats + ((head0 + r) * splits + split) * 2;
            st[0] = row_max[r];  // -inf for an empty slice, whose sum and acc are 0
            st[1] = row_sum[r];
        }
    }
}

// One block per (m, h): the slices' weights exp(max_s - max) are formed once, then each column is
// the weighted sum of the slices' accumulators, in split order, over the weighted sums.
template <typename E>
__global__ void __launch_bounds__(ATTENTION_BLOCK)
attention_decode_combine_kernel(E* out, const float* stats, const float* partial_acc, int splits, int D) {
    __shared__ float weight[MAX_DECODE_SPLITS];
    __shared__ float inv_sum;
    __shared__ int bad;
    const size_t mh = blockIdx.x;
    const float* st = stats + mh * splits * 2;
    if (threadIdx.x == 0) {
        float total_max = -INFINITY;
        int nan = 0;
        for (int s = 0; s < splits; ++s) {
            nan |= isnan(st[2 * s]) ? 1 : 0;
            total_max = fmaxf(total_max, st[2 * s]);
        }
        float sum = 0.0f;
        for (int s = 0; s < splits; ++s) {
            weight[s] = st[2 * s] == -INFINITY ? 0.0f : expf(st[2 * s] - total_max);
            sum += st[2 * s + 1] * weight[s];
        }
        bad = nan;
        inv_sum = 1.0f / sum;
    }
    __syncthreads();
    const float* acc = partial_acc + mh * splits * D;
    for (int c = threadIdx.x; c < D; c += ATTENTION_BLOCK) {
        float a = 0.0f;
        for (int s = 0; s < splits; ++s) a += acc[static_cast<size_t>(s) * D + c] * weight[s];
        out[mh * D + c] = from_f32<E>(bad ? NAN : a * inv_sum);
    }
}

// SM count of the current device, asked once per device: the split rule's only input from the device.
int decode_sm_count() {
    constexpr int MAX_DEVICES = 64;
    static std::atomic<int> counts[MAX_DEVICES];
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= MAX_DEVICES) {
        (void)cudaGetLastError();
        return 1;
    }
    int count = counts[device].load(std::memory_order_relaxed);
    if (count > 0) return count;
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count < 1) {
        (void)cudaGetLastError();
        count = 1;
    }
    counts[device].store(count, std::memory_order_relaxed);
    return count;
}

// Splits enough to give each SM about two blocks, but none shorter than DECODE_MIN_SPLIT_KEYS of
// the longest visible range the table allows; requested > 0 overrides the rule (tests).
int decode_splits(int M, int KVH, int maxBlocks, int blockSize, int window, int requested) {
    if (requested > 0) return min(requested, MAX_DECODE_SPLITS);
    long long context = static_cast<long long>(maxBlocks) * blockSize;
    if (window > 0 && window < context) context = window;
    const long long work = static_cast<long long>(M) * KVH;
    const int sms = decode_sm_count();
    if (work >= sms || work == 0) return 1;
    long long splits = (2LL * sms + work - 1) / work;
    splits = std::min(splits, (context + DECODE_MIN_SPLIT_KEYS - 1) / DECODE_MIN_SPLIT_KEYS);
    return static_cast<int>(std::max(1LL, std::min(splits, static_cast<long long>(MAX_DECODE_SPLITS))));
}

bool decode_kernel_fits(int H, int KVH, int D) {
    return decode_shared_floats(H / KVH, D) * sizeof(float) <= DECODE_SHARED_LIMIT;
}

size_t decode_scratch_bytes(int M, int H, int D, int splits) {
    return splits > 1 ? static_cast<size_t>(M) * H * splits * (2 + static_cast<size_t>(D)) * sizeof(float) : 0;
}

int check_heads(const char* call, int H, int KVH, int D, int window) {
    if (H < 0 || KVH < 1 || H % KVH != 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need KVH >= 1 and H >= 0 a multiple of KVH, got H=%d KVH=%d",
                          call, H, KVH);
    }
    if (D < 2 || D > MAX_HEAD_DIM || D % 2 != 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need an even head dim D in [2, %d], got D=%d", call, MAX_HEAD_DIM,
                          D);
    }
    if (window < 0) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need window >= 0 (0 = none), got %d", call, window);
    return SPIN_OK;
}

int check_shape(const char* call, int B, int T, int H, int KVH, int D, int window) {
    if (B < 0 || T < 0) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need B >= 0 and T >= 0, got B=%d T=%d", call, B, T);
    return check_heads(call, H, KVH, D, window);
}

// blocks = heads * B * ceil(T / n), which must fit the grid's x dimension.
int tile_blocks(const char* call, int B, int heads, int T, int n, unsigned int* blocks) {
    const long long needed = static_cast<long long>(B) * heads * ((T + n - 1) / n);
    if (needed > 0x7fffffffLL) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %lld blocks is too many", call, needed);
    *blocks = static_cast<unsigned int>(needed);
    return SPIN_OK;
}

AttentionShape make_shape(int T, int H, int KVH, int D, int window) {
    // 1/sqrt(D) in double, rounded once, as the CPU backend computes it.
    return AttentionShape{T, H, KVH, D, window, tile_rows(D), static_cast<float>(1.0 / sqrt(static_cast<double>(D)))};
}

template <class Kernel>
int allow_shared(Kernel* kernel, size_t bytes) {
    if (bytes <= DEFAULT_SHARED_LIMIT) return SPIN_OK;
    SPIN_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    return SPIN_OK;
}

}  // namespace

extern "C" {

// The tensor-core kernel where it applies (attention_mma.cu: bf16, D 64 or 128), else the simple one.
int spin_attention_forward(spin_stream_t stream, int dtype, void* out, float* lse, const void* q, const void* k,
                           const void* v, const int32_t* keyMask, int B, int T, int H, int KVH, int D, int window) {
    const char* call = "spin_attention_forward";
    if (int status = check_shape(call, B, T, H, KVH, D, window)) return status;
    if (B == 0 || T == 0 || H == 0) return SPIN_OK;
    if (!out || !lse || !q || !k || !v || !keyMask) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
    if (spin::attention_mma_supports(dtype, D, {q, k, v, out})) {
        return spin::attention_forward_mma(spin::to_cuda(stream), out, lse, q, k, v, keyMask, B, T, H, KVH, D, window);
    }
    return spin_attention_forward_simple(stream, dtype, out, lse, q, k, v, keyMask, B, T, H, KVH, D, window);
}

// The simple kernel for every dtype and head dim: the reference the tensor-core kernel is tested against.
int spin_attention_forward_simple(spin_stream_t stream, int dtype, void* out, float* lse, const void* q,
                                  const void* k, const void* v, const int32_t* keyMask, int B, int T, int H, int KVH,
                                  int D, int window) {
    const char* call = "spin_attention_forward_simple";
    if (int status = check_shape(call, B, T, H, KVH, D, window)) return status;
    if (B == 0 || T == 0 || H == 0) return SPIN_OK;
    if (!out || !lse || !q || !k || !v || !keyMask) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
    const AttentionShape shape = make_shape(T, H, KVH, D, window);
    unsigned int blocks = 0;
    if (int status = tile_blocks(call, B, H, T, shape.n, &blocks)) return status;
    const size_t shared_bytes = forward_shared_floats(shape.n, D) * sizeof(float);
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        using E = decltype(element);
        if (int status = allow_shared(attention_forward_kernel<E>, shared_bytes)) return status;
        SPIN_LAUNCH(attention_forward_kernel<E>, blocks, ATTENTION_BLOCK, shared_bytes, spin::to_cuda(stream),
                    static_cast<E*>(out), lse, static_cast<const E*>(q), static_cast<const E*>(k),
                    static_cast<const E*>(v), keyMask, shape);
        SPIN_LAUNCH_CHECK(attention_forward_kernel);
        return SPIN_OK;
    });
}

int spin_attention_backward_scratch_bytes(int B, int T, int H, size_t* out) {
    if (B < 0 || T < 0 || H < 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "spin_attention_backward_scratch_bytes: need B, T, H >= 0, got B=%d T=%d H=%d", B, T, H);
    }
    if (!out) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_attention_backward_scratch_bytes: NULL out");
    *out = static_cast<size_t>(B) * T * H * sizeof(float);  // delta [B,H,T]
    return SPIN_OK;
}

int spin_attention_backward(spin_stream_t stream, int dtype, void* dq, void* dk, void* dv, void* scratch,
                            const void* dOut, const void* q, const void* k, const void* v, const int32_t* keyMask,
                            const void* out, const float* lse, int B, int T, int H, int KVH, int D, int window) {
    const char* call = "spin_attention_backward";
    if (int status = check_shape(call, B, T, H, KVH, D, window)) return status;
    if (B == 0 || T == 0 || H == 0) return SPIN_OK;
    if (!dq || !dk || !dv || !scratch || !dOut || !q || !k || !v || !keyMask || !out || !lse) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
    }
    const AttentionShape shape = make_shape(T, H, KVH, D, window);
    unsigned int dq_blocks = 0, dkdv_blocks = 0;
    if (int status = tile_blocks(call, B, H, T, shape.n, &dq_blocks)) return status;
    if (int status = tile_blocks(call, B, KVH, T, shape.n, &dkdv_blocks)) return status;
    const long long rows = static_cast<long long>(B) * T * H;
    const long long delta_blocks = (rows + ATTENTION_BLOCK - 1) / ATTENTION_BLOCK;
    if (rows > 0x7fffffffLL) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %lld rows is too many", call, rows);
    const size_t dq_bytes = dq_shared_floats(shape.n, D) * sizeof(float);
    const size_t dkdv_bytes = dkdv_shared_floats(shape.n, D) * sizeof(float);
    const cudaStream_t cuda_stream = spin::to_cuda(stream);
    float* delta = static_cast<float*>(scratch);
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        using E = decltype(element);
        if (int status = allow_shared(attention_dq_kernel<E>, dq_bytes)) return status;
        if (int status = allow_shared(attention_dkdv_kernel<E>, dkdv_bytes)) return status;
        const E* const d_out = static_cast<const E*>(dOut);
        const E* const q_t = static_cast<const E*>(q);
        const E* const k_t = static_cast<const E*>(k);
        const E* const v_t = static_cast<const E*>(v);
        SPIN_LAUNCH(attention_delta_kernel<E>, static_cast<unsigned int>(delta_blocks), ATTENTION_BLOCK, 0, cuda_stream,
                    delta, d_out, static_cast<const E*>(out), static_cast<int>(rows), T, H, D);
        SPIN_LAUNCH_CHECK(attention_delta_kernel);
        // Both passes on tensor cores where the forward runs on them (attention_mma.cu).
        if (spin::attention_mma_supports(dtype, D, {q, k, v, dOut, dq, dk, dv})) {
            if (int status = spin::attention_dq_mma(cuda_stream, dq, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH,
                                                    D, window)) {
                return status;
            }
            return spin::attention_dkdv_mma(cuda_stream, dk, dv, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, D,
                                            window);
        }
        SPIN_LAUNCH(attention_dq_kernel<E>, dq_blocks, ATTENTION_BLOCK, dq_bytes, cuda_stream, static_cast<E*>(dq),
                    d_out, q_t, k_t, v_t, keyMask, lse, delta, shape);
        SPIN_LAUNCH_CHECK(attention_dq_kernel);
        SPIN_LAUNCH(attention_dkdv_kernel<E>, dkdv_blocks, ATTENTION_BLOCK, dkdv_bytes, cuda_stream,
                    static_cast<E*>(dk), static_cast<E*>(dv), d_out, q_t, k_t, v_t, keyMask, lse, delta, shape);
        SPIN_LAUNCH_CHECK(attention_dkdv_kernel);
        return SPIN_OK;
    });
}

// One block per (token, query head), every dtype and D: the reference the decode kernel is held to.
int spin_attention_cached_forward_simple(spin_stream_t stream, int dtype, void* out, const void* q, const void* kCache,
                                         const void* vCache, const int32_t* blockTable, const int32_t* querySeq,
                                         const int32_t* queryPos, int M, int H, int KVH, int D, int R, int S,
                                         int maxBlocks, int blockSize, int window) {
    const char* call = "spin_attention_cached_forward_simple";
    if (M < 0 || R < 0 || S < 0 || maxBlocks < 0 || blockSize < 1) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "%s: need M, R, S, maxBlocks >= 0 and blockSize >= 1, got M=%d R=%d S=%d maxBlocks=%d "
                          "blockSize=%d",
                          call, M, R, S, maxBlocks, blockSize);
    }
    if (int status = check_heads(call, H, KVH, D, window)) return status;
    if (M == 0 || H == 0) return SPIN_OK;
    if (!out || !q || !kCache || !vCache || !blockTable || !querySeq || !queryPos) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
    }
    const long long blocks = static_cast<long long>(M) * H;
    if (blocks > 0x7fffffffLL) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %lld blocks is too many", call, blocks);
    const DecodeShape shape{H, KVH, D, R, S, maxBlocks, blockSize, window,
                            static_cast<float>(1.0 / sqrt(static_cast<double>(D)))};
    // q row plus one chunk of keys: at most 34 KiB (D = 256), within the default limit.
    const size_t shared_bytes = (D + static_cast<size_t>(DECODE_CHUNK) * (D + 1)) * sizeof(float);
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        using E = decltype(element);
        SPIN_LAUNCH(attention_cached_kernel<E>, static_cast<unsigned int>(blocks), ATTENTION_BLOCK, shared_bytes,
                    spin::to_cuda(stream), static_cast<E*>(out), static_cast<const E*>(q),
                    static_cast<const E*>(kCache), static_cast<const E*>(vCache), blockTable, querySeq, queryPos,
                    shape);
        SPIN_LAUNCH_CHECK(attention_cached_kernel);
        return SPIN_OK;
    });
}


int spin_attention_cached_forward_scratch_bytes(int M, int H, int KVH, int D, int maxBlocks, int blockSize, int window,
                                                int splits, size_t* out) {
    const char* call = "spin_attention_cached_forward_scratch_bytes";
    if (M < 0 || maxBlocks < 0 || blockSize < 1 || splits < 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "%s: need M, maxBlocks, splits >= 0 and blockSize >= 1, got M=%d maxBlocks=%d blockSize=%d "
                          "splits=%d",
                          call, M, maxBlocks, blockSize, splits);
    }
    if (int status = check_heads(call, H, KVH, D, window)) return status;
    if (!out) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL out", call);
    *out = decode_kernel_fits(H, KVH, D)
               ? decode_scratch_bytes(M, H, D, decode_splits(M, KVH, maxBlocks, blockSize, window, splits))
               : 0;
    return SPIN_OK;
}

int spin_attention_cached_forward(spin_stream_t stream, int dtype, void* out, const void* q, const void* kCache,
                                  const void* vCache, const int32_t* blockTable, const int32_t* querySeq,
                                  const int32_t* queryPos, int M, int H, int KVH, int D, int R, int S,
                                  int maxBlocks, int blockSize, int window, int splits, void* scratch) {
    const char* call = "spin_attention_cached_forward";
    if (M < 0 || R < 0 || S < 0 || maxBlocks < 0 || blockSize < 1 || splits < 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "%s: need M, R, S, maxBlocks, splits >= 0 and blockSize >= 1, got M=%d R=%d S=%d "
                          "maxBlocks=%d blockSize=%d splits=%d",
                          call, M, R, S, maxBlocks, blockSize, splits);
    }
    if (int status = check_heads(call, H, KVH, D, window)) return status;
    if (M == 0 || H == 0) return SPIN_OK;
    if (!out || !q || !kCache || !vCache || !blockTable || !querySeq || !queryPos) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
    }
    if (!decode_kernel_fits(H, KVH, D)) {
        return spin_attention_cached_forward_simple(stream, dtype, out, q, kCache, vCache, blockTable, querySeq,
                                                    queryPos, M, H, KVH, D, R, S, maxBlocks, blockSize, window);
    }
    const int used = decode_splits(M, KVH, maxBlocks, blockSize, window, splits);
    if (used > 1 && !scratch) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %d splits need scratch (spin_attention_cached_forward_scratch_bytes)",
                          call, used);
    }
    const long long blocks = static_cast<long long>(M) * KVH * used;
    if (blocks > 0x7fffffffLL || static_cast<long long>(M) * H > 0x7fffffffLL) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %lld blocks is too many", call, blocks);
    }
    const DecodeShape shape{H, KVH, D, R, S, maxBlocks, blockSize, window,
                            static_cast<float>(1.0 / sqrt(static_cast<double>(D)))};
    const size_t shared_bytes = decode_shared_floats(H / KVH, D) * sizeof(float);
    float* stats = static_cast<float*>(scratch);
    float* partial_acc = used > 1 ? stats + static_cast<size_t>(M) * H * used * 2 : nullptr;
    const cudaStream_t cuda_stream = spin::to_cuda(stream);
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        using E = decltype(element);
        const size_t row_bytes = static_cast<size_t>(D) * sizeof(E);
        const bool vectorised = row_bytes % sizeof(Pack16) == 0 &&
                                reinterpret_cast<uintptr_t>(kCache) % alignof(Pack16) == 0 &&
                                reinterpret_cast<uintptr_t>(vCache) % alignof(Pack16) == 0;
        if (int status = allow_shared(attention_decode_kernel<E>, shared_bytes)) return status;
        SPIN_LAUNCH(attention_decode_kernel<E>, static_cast<unsigned int>(blocks), ATTENTION_BLOCK, shared_bytes,
                    cuda_stream, static_cast<E*>(out), stats, partial_acc, static_cast<const E*>(q),
                    static_cast<const E*>(kCache), static_cast<const E*>(vCache), blockTable, querySeq, queryPos,
                    shape, used, vectorised);
        SPIN_LAUNCH_CHECK(attention_decode_kernel);
        if (used > 1) {
            SPIN_LAUNCH(attention_decode_combine_kernel<E>, static_cast<unsigned int>(static_cast<long long>(M) * H),
                        ATTENTION_BLOCK, 0, cuda_stream, static_cast<E*>(out), stats, partial_acc, used, D);
            SPIN_LAUNCH_CHECK(attention_decode_combine_kernel);
        }
        return SPIN_OK;
    });
}
}  // extern "C"
