// attention_forward_mma: the causal GQA attention forward on tensor cores for bf16 activations and
// head dims 64 and 128, in the manner of FlashAttention-2. Same semantics and outputs as the simple
// forward in kernels/attention.cu (out and the log-sum-exp lse that its backward reads):
//   s_ij = (q_i . k_j) / sqrt(D) over the keys j query i sees (j <= i, keyMask[b,j] != 0, and with
//   window W > 0: j > i - W);  lse_i = log sum_j exp(s_ij);  out_i = sum_j exp(s_ij - lse_i) v_j;
//   no visible key: out_i = 0, lse_i = -inf.
//
// Shapes: out, q [B,T,H,D] bf16; k, v [B,T,KVH,D] bf16; keyMask [B,T] int32; lse [B,H,T] fp32.
//
// Block: 4 warps per query head, HEADS (1 or 2) query heads of one GQA group over the same 64 query
// rows (QueryTile), warp w of head slot s owning rows 16w..16w+15 of head h0 + s. The heads of a
// block share every K/V tile it copies, so with two heads a K/V byte read from memory serves 128
// query rows instead of 64. The grid is B*(H/HEADS)*ceil(T/64), the longest (last, under the
// causal mask) query tiles first, so the short ones fill the tail of the launch.
// Per block:
//   - Q [HEADS][64][D] is copied once into shared memory (cp.async) and each warp keeps its 16 rows
//     as mma A fragments in registers (ldmatrix.x4), D/16 of them.
//   - K and V stream through two shared buffers of [64][D] each (double buffering): the copies of
//     key tile t+1 are issued before tile t is computed, so they overlap its mma work. Only the
//     key tiles between the first key the tile's first query may see (window) and the tile's last
//     query (causal) are ever loaded; a warp whose 16 rows see none of a loaded tile skips it.
//   - S = Q K^T: per key tile, 16x64 scores per warp in fp32 accumulators (mma.sync m16n8k16,
//     bf16 in, fp32 accumulate), K fragments by ldmatrix.x4 from the [key][d] rows (the "col" B
//     operand is K's rows as they are stored).
//   - Online softmax in fp32 over the registers, in log2 units (scores times log2(e)/sqrt(D), so
//     one exp2f per score): m (row max) and l (this lane's part of the row sum of exp2(s - m));
//     a new max rescales l and the accumulators by exp2(m_old - m_new).
//   - O += P V: P's accumulators are rounded to bf16 and repacked in registers as A fragments
//     (the C layout of S for 16 keys is the A layout of P, FA2's trick); V fragments by
//     ldmatrix.x4.trans from V's [key][d] rows. O is 16xD fp32 per warp, D/8 accumulators of 4.
//   - At the end l is summed over the 4 lanes of a row, out = O / l rounded once to bf16 (staged in
//     the warp's own Q rows, so that the stores to memory are 16-byte chunks), and
//     lse = (m + log2 l) * ln 2.
// Numerics against the simple kernel: the same fp32 scores up to summation order (the mma adds
// the exact bf16 products in fp32), and P rounded to bf16 before P V (the simple kernel keeps it
// fp32); l is summed from the unrounded P, as FA2 does.
//
// Shared memory: rows of D + 8 bf16 (a 16-byte pad). A row is then (D + 8) * 2 bytes = 4 banks
// past a multiple of 128 bytes, so the 8 rows of one 8x8 ldmatrix matrix (16 bytes each) fall on
// 8 disjoint groups of 4 banks: conflict-free without a swizzle, and cp.async's 16-byte chunks stay
// aligned. 2 K + 2 V + HEADS Q buffers: (4 + HEADS) * 64 * (D + 8) * 2 bytes, 54 KiB at D = 64 and
// 102 KiB at D = 128 with two heads (two blocks of 8 warps fit an H100 SM).
//
// Determinism: every sum has a fixed order depending on the shapes only (the mma's k order, key
// tiles in order, the quad reduction of l by a fixed butterfly), so equal inputs give equal bits.
#include <math.h>

#include "attention_mma.cuh"
#include "block_reduce.cuh"
#include "dtype.cuh"
#include "internal.h"
#include "ptx.cuh"

namespace {

constexpr int MMA_WARPS = 4;
constexpr int MMA_THREADS = MMA_WARPS * WARP_SIZE;
constexpr int MMA_QUERY_ROWS = MMA_WARPS * 16;  // 16 rows per warp: the mma's M
constexpr int MMA_KEY_ROWS = 64;                // keys per K/V tile
constexpr size_t DEFAULT_SHARED = 48 * 1024;

struct MmaShape {
    int T, H, KVH, window;
    float scale_log2;  // log2(e) / sqrt(D): scores in log2 units
    float scale;       // 1 / sqrt(D), rounded once from double as the simple kernels do (ds)
};

template <int D>
__host__ __device__ constexpr int mma_ld() {
    return D + 8;
}

// Queues the copy of `valid` rows of D bf16 (global rows `stride` elements apart) into a [64][LD]
// tile and zeroes the other rows (cp.async with 0 source bytes), so that the P V of a partial tile
// multiplies exact zeros (a poisoned row would turn 0 * NaN into NaN).
template <int D, int THREADS = MMA_THREADS>
__device__ __forceinline__ void copy_tile_async(uint16_t* tile, const bf16* first_row, size_t stride, int valid) {
    constexpr int CHUNKS = D / 8;  // 16-byte chunks per row
    for (int c = threadIdx.x; c < MMA_KEY_ROWS * CHUNKS; c += THREADS) {
        const int r = c / CHUNKS, col = (c % CHUNKS) * 8;
        const bool inside = r < valid;
        // An empty copy reads nothing, but the address stays a valid one (the tile's first row).
        const bf16* src = inside ? first_row + static_cast<size_t>(r) * stride + col : first_row;
        cp_async_16_zfill(tile + r * mma_ld<D>() + col, src, inside ? 16 : 0);
    }
}

// The key/value pipeline both passes share: tile t + 1 (if any) starts into the buffer every warp
// left at the end of tile t - 1, then the wait makes tile t (and whatever was issued with it)
// visible to the block. The commit may be empty, so that one wait<1> always means "tile t landed".
template <int D, int THREADS>
__device__ __forceinline__ void advance_kv_pipeline(uint16_t* k_s, uint16_t* v_s, const bf16* k_head,
                                                    const bf16* v_head, size_t kv_stride, int t, int key_tiles,
                                                    int j0, int key_end) {
    if (t + 1 < key_tiles) {
        const int next = j0 + MMA_KEY_ROWS, valid = min(MMA_KEY_ROWS, key_end - next);
        const int other = (t + 1) % 2;
        copy_tile_async<D, THREADS>(k_s + other * MMA_KEY_ROWS * mma_ld<D>(),
                                    k_head + static_cast<size_t>(next) * kv_stride, kv_stride, valid);
        copy_tile_async<D, THREADS>(v_s + other * MMA_KEY_ROWS * mma_ld<D>(),
                                    v_head + static_cast<size_t>(next) * kv_stride, kv_stride, valid);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
}

// c0 += a b0 and c1 += a b1 for the two 16x8 B blocks b0, b1 that one ldmatrix.x4 (TRANS: .trans)
// loads, each lane passing the row address its caller's layout gives: the step every product of
// these kernels is made of.
template <bool TRANS>
__device__ __forceinline__ void mma_two_blocks(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4],
                                               const uint16_t* row) {
    uint32_t frag[4];
    ldmatrix<4, TRANS>(frag, row);
    const uint32_t b0[2] = {frag[0], frag[1]}, b1[2] = {frag[2], frag[3]};
    mma_m16n8k16_bf16(c0, a, b0, c0);
    mma_m16n8k16_bf16(c1, a, b1, c1);
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    // The element with the lower column index sits in the lower half (PTX ISA fragment layout).
    return static_cast<uint32_t>(f32_to_bf16_bits(lo)) | static_cast<uint32_t>(f32_to_bf16_bits(hi)) << 16;
}

// What a block of the forward or dq grid owns: HEADS query heads h0 .. h0 + HEADS - 1 of kv head g
// (one GQA group, so they read the same K/V tiles), over the query rows [i0, i0 + rows), and the
// keys [first_key, key_end) in key_tiles tiles that any of those rows may see (window, causal).
// blockIdx.x = ((b * H / HEADS) + h0 / HEADS) * tiles + (tiles - 1 - tile): the longest (last,
// under the causal mask) query tiles start first, so the short ones fill the tail of the launch.
struct QueryTile {
    int b, g, h0, i0, rows, first_key, key_end, key_tiles;
};

template <int HEADS>
__device__ __forceinline__ QueryTile query_tile(const MmaShape& shape) {
    const int T = shape.T, H = shape.H, KVH = shape.KVH, W = shape.window;
    const int tiles = (T + MMA_QUERY_ROWS - 1) / MMA_QUERY_ROWS, head_blocks = H / HEADS;
    const int tile = tiles - 1 - static_cast<int>(blockIdx.x % tiles);
    QueryTile t;
    t.h0 = (static_cast<int>(blockIdx.x / tiles) % head_blocks) * HEADS;
    t.b = static_cast<int>(blockIdx.x / tiles) / head_blocks;
    t.g = t.h0 / (H / KVH);
    t.i0 = tile * MMA_QUERY_ROWS;
    t.rows = min(MMA_QUERY_ROWS, T - t.i0);
    t.first_key = W > 0 ? max(0, t.i0 - W + 1) : 0;
    t.key_end = t.i0 + t.rows;
    t.key_tiles = (t.key_end - t.first_key + MMA_KEY_ROWS - 1) / MMA_KEY_ROWS;
    return t;
}

// Stores a warp's 16 x D fp32 tile of C fragments (element e of block n: row group + 8 * (e / 2),
// column 8n + 2 tig + e % 2), row r's two halves times scale[r], as bf16 rows first_row + r * stride
// for r < valid. The tile goes through `stage`, the warp's own 16 rows of a [.][LD] shared buffer
// that nothing reads any more, so that the global stores are whole 16-byte chunks (a warp writes
// 512 contiguous bytes per store at D = 128, where the fragments' own layout gives 4-byte pieces).
template <int D>
__device__ __forceinline__ void store_rows(bf16* first_row, size_t stride, int valid, uint16_t* stage,
                                           const float (&acc)[D / 8][4], const float (&scale)[2]) {
    constexpr int LD = mma_ld<D>(), CHUNKS = D / 8;
    const int lane = threadIdx.x % WARP_SIZE, group = lane / 4, tig = lane % 4;
    SPIN_UNROLL
    for (int n = 0; n < D / 8; ++n) {
        SPIN_UNROLL
        for (int r = 0; r < 2; ++r) {
            *reinterpret_cast<uint32_t*>(stage + (group + 8 * r) * LD + n * 8 + tig * 2) =
                pack_bf16(acc[n][2 * r] * scale[r], acc[n][2 * r + 1] * scale[r]);
        }
    }
    __syncwarp();
    for (int c = lane; c < 16 * CHUNKS; c += WARP_SIZE) {
        const int r = c / CHUNKS, col = (c % CHUNKS) * 8;
        if (r < valid) {
            *reinterpret_cast<Pack16*>(first_row + static_cast<size_t>(r) * stride + col) =
                *reinterpret_cast<const Pack16*>(stage + r * LD + col);
        }
    }
}

template <int D, int HEADS>
__global__ void __launch_bounds__(MMA_THREADS * HEADS)
attention_forward_mma_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                             const int32_t* keyMask, MmaShape shape) {
    constexpr int THREADS = MMA_THREADS * HEADS;
    constexpr int LD = mma_ld<D>();
    constexpr int KSTEPS = D / 16;                 // k steps of S = Q K^T
    constexpr int DBLOCKS = D / 8;                 // n blocks of O
    constexpr int SBLOCKS = MMA_KEY_ROWS / 8;      // n blocks of S
    constexpr int PSTEPS = MMA_KEY_ROWS / 16;      // k steps of O += P V
    SPIN_DYNAMIC_SHARED(uint16_t, shared);
    uint16_t* const k_s = shared;                            // [2][64][LD]
    uint16_t* const v_s = k_s + 2 * MMA_KEY_ROWS * LD;       // [2][64][LD]
    uint16_t* const q_s = v_s + 2 * MMA_KEY_ROWS * LD;       // [HEADS][64][LD]

    const int T = shape.T, H = shape.H, KVH = shape.KVH, W = shape.window;
    const QueryTile tile = query_tile<HEADS>(shape);
    const int b = tile.b, i0 = tile.i0, first_key = tile.first_key, key_end = tile.key_end;
    const size_t q_stride = static_cast<size_t>(H) * D, kv_stride = static_cast<size_t>(KVH) * D;
    const bf16* const k_head = k + (static_cast<size_t>(b) * T * KVH + tile.g) * D;  // row t at t * kv_stride
    const bf16* const v_head = v + (static_cast<size_t>(b) * T * KVH + tile.g) * D;
    const int32_t* const mask = keyMask + static_cast<size_t>(b) * T;

    for (int s = 0; s < HEADS; ++s) {
        const size_t q_offset = (static_cast<size_t>(b) * T * H + tile.h0 + s) * D + static_cast<size_t>(i0) * q_stride;
        copy_tile_async<D, THREADS>(q_s + s * MMA_QUERY_ROWS * LD, q + q_offset, q_stride, tile.rows);
    }
    copy_tile_async<D, THREADS>(k_s, k_head + static_cast<size_t>(first_key) * kv_stride, kv_stride,
                                min(MMA_KEY_ROWS, key_end - first_key));
    copy_tile_async<D, THREADS>(v_s, v_head + static_cast<size_t>(first_key) * kv_stride, kv_stride,
                                min(MMA_KEY_ROWS, key_end - first_key));
    cp_async_commit();

    // Warps 4s .. 4s + 3 compute query head h0 + s, each 16 rows of the tile.
    const int lane = threadIdx.x % WARP_SIZE, slot = threadIdx.x / MMA_THREADS;
    const int warp = threadIdx.x / WARP_SIZE % MMA_WARPS, h = tile.h0 + slot;
    uint16_t* const q_tile = q_s + slot * MMA_QUERY_ROWS * LD;
    const int group = lane / 4, tig = lane % 4;  // accumulator row and column pair (PTX ISA names)
    const int warp_first = i0 + warp * 16;
    const int row_of[2] = {warp_first + group, warp_first + group + 8};  // this lane's two query rows

    uint32_t q_frag[KSTEPS][4];
    float o[DBLOCKS][4];
    for (int n = 0; n < DBLOCKS; ++n) {
        for (int e = 0; e < 4; ++e) o[n][e] = 0.0f;
    }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    for (int t = 0; t < tile.key_tiles; ++t) {
        const int j0 = first_key + t * MMA_KEY_ROWS;
        const int buffer = t % 2;
        advance_kv_pipeline<D, THREADS>(k_s, v_s, k_head, v_head, kv_stride, t, tile.key_tiles, j0, key_end);

        if (t == 0) {
            // Lane l addresses row l % 16 of the warp's rows, columns +8 for lanes 16..31: matrices
            // (rows 0-7 | 8-15) x (k 0-7 | 8-15) in the order a0..a3 wants.
            const uint16_t* row = q_tile + (warp * 16 + lane % 16) * LD + (lane / 16) * 8;
            for (int kk = 0; kk < KSTEPS; ++kk) ldmatrix<4>(q_frag[kk], row + kk * 16);
        }

        // Warp-uniform: none of the warp's rows sees a key of this tile (all later than its last
        // row, or all at or before its first row minus the window). Its scores would all be -inf.
        const bool skip = j0 > warp_first + 15 || (W > 0 && j0 + MMA_KEY_ROWS - 1 <= warp_first - W);
        if (!skip) {
            const uint16_t* const k_tile = k_s + buffer * MMA_KEY_ROWS * LD;
            const uint16_t* const v_tile = v_s + buffer * MMA_KEY_ROWS * LD;
            float s[SBLOCKS][4];
            for (int n = 0; n < SBLOCKS; ++n) {
                for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
            }
            // K fragments for key blocks n, n+1 at once: lane l addresses key 8*(l/16) + l%8 of the
            // pair, d +8 for (l/8) odd, giving b0, b1 of block n and then of block n+1.
            const uint16_t* const k_row = k_tile + ((lane / 16) * 8 + lane % 8) * LD + ((lane / 8) % 2) * 8;
            for (int kk = 0; kk < KSTEPS; ++kk) {
                for (int n = 0; n < SBLOCKS; n += 2) {
                    mma_two_blocks<false>(s[n], s[n + 1], q_frag[kk], k_row + n * 8 * LD + kk * 16);
                }
            }

            // Scale, mask, and the online softmax; element e of block n is row row_of[e / 2], key
            // j0 + 8n + 2*tig + e % 2.
            float tile_max[2] = {-INFINITY, -INFINITY};
            for (int n = 0; n < SBLOCKS; ++n) {
                for (int e = 0; e < 4; ++e) {
                    const int i = row_of[e / 2], j = j0 + n * 8 + tig * 2 + e % 2;
                    const bool visible = j < key_end && j <= i && (W == 0 || j > i - W) && mask[j] != 0;
                    s[n][e] = visible ? s[n][e] * shape.scale_log2 : -INFINITY;
                    tile_max[e / 2] = fmaxf(tile_max[e / 2], s[n][e]);
                }
            }
            float rescale[2], base[2];
            for (int r = 0; r < 2; ++r) {
                // A row's 64 keys of this tile are spread over the 4 lanes of its quad.
                tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
                tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
                const float new_max = fmaxf(m[r], tile_max[r]);
                // A row that has seen no visible key keeps max -inf; exp2(s - 0) of its -inf scores
                // is 0 and there is nothing to rescale (its l and O are 0), so base 0 avoids the
                // NaN of -inf - -inf.
                base[r] = new_max == -INFINITY ? 0.0f : new_max;
                rescale[r] = exp2f(m[r] - base[r]);  // 0 on a row's first visible key
                m[r] = new_max;
                l[r] *= rescale[r];
            }
            for (int n = 0; n < DBLOCKS; ++n) {
                for (int e = 0; e < 4; ++e) o[n][e] *= rescale[e / 2];
            }
            uint32_t p_frag[PSTEPS][4];
            for (int n = 0; n < SBLOCKS; ++n) {
                for (int e = 0; e < 4; ++e) {
                    s[n][e] = exp2f(s[n][e] - base[e / 2]);
                    l[e / 2] += s[n][e];
                }
                // Keys 16kk..16kk+7 (block 2kk) give a0 (row g) and a1 (row g+8); keys +8 (block
                // 2kk+1) give a2 and a3.
                p_frag[n / 2][(n % 2) * 2 + 0] = pack_bf16(s[n][0], s[n][1]);
                p_frag[n / 2][(n % 2) * 2 + 1] = pack_bf16(s[n][2], s[n][3]);
            }

            // V fragments for d blocks n, n+1 of keys 16kk..16kk+15: lane l addresses key
            // 8*((l/8)%2) + l%8, d +8 for l >= 16; transposed, they are b0, b1 of block n, then n+1.
            const uint16_t* const v_row = v_tile + (((lane / 8) % 2) * 8 + lane % 8) * LD + (lane / 16) * 8;
            for (int kk = 0; kk < PSTEPS; ++kk) {
                for (int n = 0; n < DBLOCKS; n += 2) {
                    mma_two_blocks<true>(o[n], o[n + 1], p_frag[kk], v_row + kk * 16 * LD + n * 8);
                }
            }
        }
        __syncthreads();  // every warp is done with this buffer before tile t+2 is copied into it
    }
    cp_async_wait<0>();  // the last (empty) group: nothing may be left in flight at exit

    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    // l >= 1 once any key is visible (the max's own term is exp2(0)), so l = 0 means none.
    const float inv[2] = {l[0] > 0.0f ? 1.0f / l[0] : 0.0f, l[1] > 0.0f ? 1.0f / l[1] : 0.0f};
    // The warp's Q rows were last read at t = 0: they stage its output.
    store_rows<D>(out + (static_cast<size_t>(b) * T * H + h) * D + static_cast<size_t>(warp_first) * q_stride,
                  q_stride, T - warp_first, q_tile + warp * 16 * LD, o, inv);
    for (int r = 0; r < 2; ++r) {
        const int i = row_of[r];
        if (i < T && tig == 0) {
            lse[(static_cast<size_t>(b) * H + h) * T + i] =
                l[r] > 0.0f ? (m[r] + log2f(l[r])) * 0.6931471805599453f : -INFINITY;
        }
    }
}

// dq of the backward on tensor cores (the dq pass of FA2's backward, without its float atomics:
// one block owns each dq tile), for the forward's grid and key loop:
//   p_ij = exp(s_ij - lse_i) (0 for a key i does not see, or when lse_i = -inf),
//   dp_ij = dOut_i . v_j,  ds_ij = p_ij (dp_ij - delta_i) / sqrt(D),  dq_i = sum_j ds_ij k_j.
// Shapes: dq, dOut, q [B,T,H,D] bf16; k, v [B,T,KVH,D] bf16; lse, delta [B,H,T] fp32.
// Per key tile a warp computes S = Q K^T and dP = dOut V^T (both mma, V's [key][d] rows as the
// "col" B operand, as K's are for S), forms dS in fp32 registers, rounds it to bf16 as the A
// operand (FA2's layout trick again) and adds dS K (K's rows transposed by ldmatrix.trans, as V's
// in the forward). Q and dOut fragments are reloaded from shared memory per tile (ldmatrix), which
// keeps the warp's registers to the dq accumulators and two score tiles.
// Grid and heads per block (QueryTile) as the forward's. Shared: 2 K + 2 V buffers and per head Q and
// dOut [64][LD]: (4 + 2 HEADS) * 64 * (D + 8) * 2 bytes, 136 KiB at D = 128 with two heads. Each dq
// element is summed by one lane in key order: deterministic.
template <int D, int HEADS>
__global__ void __launch_bounds__(MMA_THREADS * HEADS)
attention_dq_mma_kernel(bf16* dq, const bf16* dOut, const bf16* q, const bf16* k, const bf16* v,
                        const int32_t* keyMask, const float* lse, const float* delta, MmaShape shape) {
    constexpr int THREADS = MMA_THREADS * HEADS;
    constexpr int LD = mma_ld<D>();
    constexpr int KSTEPS = D / 16, DBLOCKS = D / 8, SBLOCKS = MMA_KEY_ROWS / 8, PSTEPS = MMA_KEY_ROWS / 16;
    SPIN_DYNAMIC_SHARED(uint16_t, shared);
    uint16_t* const k_s = shared;                                 // [2][64][LD]
    uint16_t* const v_s = k_s + 2 * MMA_KEY_ROWS * LD;            // [2][64][LD]
    uint16_t* const q_s = v_s + 2 * MMA_KEY_ROWS * LD;            // [HEADS][64][LD]
    uint16_t* const do_s = q_s + HEADS * MMA_QUERY_ROWS * LD;     // [HEADS][64][LD]

    const int T = shape.T, H = shape.H, KVH = shape.KVH, W = shape.window;
    const QueryTile tile = query_tile<HEADS>(shape);
    const int b = tile.b, i0 = tile.i0, first_key = tile.first_key, key_end = tile.key_end;
    const size_t q_stride = static_cast<size_t>(H) * D, kv_stride = static_cast<size_t>(KVH) * D;
    const bf16* const k_head = k + (static_cast<size_t>(b) * T * KVH + tile.g) * D;
    const bf16* const v_head = v + (static_cast<size_t>(b) * T * KVH + tile.g) * D;
    const int32_t* const mask = keyMask + static_cast<size_t>(b) * T;

    for (int s = 0; s < HEADS; ++s) {
        const size_t q_offset = (static_cast<size_t>(b) * T * H + tile.h0 + s) * D + static_cast<size_t>(i0) * q_stride;
        copy_tile_async<D, THREADS>(q_s + s * MMA_QUERY_ROWS * LD, q + q_offset, q_stride, tile.rows);
        copy_tile_async<D, THREADS>(do_s + s * MMA_QUERY_ROWS * LD, dOut + q_offset, q_stride, tile.rows);
    }
    copy_tile_async<D, THREADS>(k_s, k_head + static_cast<size_t>(first_key) * kv_stride, kv_stride,
                                min(MMA_KEY_ROWS, key_end - first_key));
    copy_tile_async<D, THREADS>(v_s, v_head + static_cast<size_t>(first_key) * kv_stride, kv_stride,
                                min(MMA_KEY_ROWS, key_end - first_key));
    cp_async_commit();

    // As in the forward: warps 4s .. 4s + 3 take query head h0 + s.
    const int lane = threadIdx.x % WARP_SIZE, slot = threadIdx.x / MMA_THREADS;
    const int warp = threadIdx.x / WARP_SIZE % MMA_WARPS, h = tile.h0 + slot;
    const uint16_t* const q_tile = q_s + slot * MMA_QUERY_ROWS * LD;
    const uint16_t* const do_tile = do_s + slot * MMA_QUERY_ROWS * LD;
    const size_t q_offset = (static_cast<size_t>(b) * T * H + h) * D;
    const size_t stat_offset = (static_cast<size_t>(b) * H + h) * T;
    const int group = lane / 4, tig = lane % 4;
    const int warp_first = i0 + warp * 16;
    const int row_of[2] = {warp_first + group, warp_first + group + 8};
    // lse in log2 units (the scores' own); -inf marks a query with no visible key: no gradient.
    float row_lse2[2], row_delta[2];
    for (int r = 0; r < 2; ++r) {
        const bool inside = row_of[r] < T;
        row_lse2[r] = inside ? lse[stat_offset + row_of[r]] * 1.4426950408889634f : -INFINITY;
        row_delta[r] = inside ? delta[stat_offset + row_of[r]] : 0.0f;
    }
    float acc[DBLOCKS][4];
    for (int n = 0; n < DBLOCKS; ++n) {
        for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
    }

    for (int t = 0; t < tile.key_tiles; ++t) {
        const int j0 = first_key + t * MMA_KEY_ROWS;
        const int buffer = t % 2;
        advance_kv_pipeline<D, THREADS>(k_s, v_s, k_head, v_head, kv_stride, t, tile.key_tiles, j0, key_end);

        const bool skip = j0 > warp_first + 15 || (W > 0 && j0 + MMA_KEY_ROWS - 1 <= warp_first - W);
        if (!skip) {
            const uint16_t* const k_tile = k_s + buffer * MMA_KEY_ROWS * LD;
            const uint16_t* const v_tile = v_s + buffer * MMA_KEY_ROWS * LD;
            float s[SBLOCKS][4], dp[SBLOCKS][4];
            for (int n = 0; n < SBLOCKS; ++n) {
                for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
            }
            // A fragments of Q and dOut as in the forward; K and V rows as the forward's K.
            const int a_at = (warp * 16 + lane % 16) * LD + (lane / 16) * 8;
            const int b_at = ((lane / 16) * 8 + lane % 8) * LD + ((lane / 8) % 2) * 8;
            for (int kk = 0; kk < KSTEPS; ++kk) {
                uint32_t q_frag[4], do_frag[4];
                ldmatrix<4>(q_frag, q_tile + a_at + kk * 16);
                ldmatrix<4>(do_frag, do_tile + a_at + kk * 16);
                for (int n = 0; n < SBLOCKS; n += 2) {
                    mma_two_blocks<false>(s[n], s[n + 1], q_frag, k_tile + b_at + n * 8 * LD + kk * 16);
                    mma_two_blocks<false>(dp[n], dp[n + 1], do_frag, v_tile + b_at + n * 8 * LD + kk * 16);
                }
            }
            uint32_t ds_frag[PSTEPS][4];
            for (int n = 0; n < SBLOCKS; ++n) {
                float ds[4];
                for (int e = 0; e < 4; ++e) {
                    const int r = e / 2, i = row_of[r], j = j0 + n * 8 + tig * 2 + e % 2;
                    const bool visible = j < key_end && j <= i && (W == 0 || j > i - W) && mask[j] != 0 &&
                                         row_lse2[r] != -INFINITY;
                    const float p = visible ? exp2f(s[n][e] * shape.scale_log2 - row_lse2[r]) : 0.0f;
                    ds[e] = p * (dp[n][e] - row_delta[r]) * shape.scale;
                }
                ds_frag[n / 2][(n % 2) * 2 + 0] = pack_bf16(ds[0], ds[1]);
                ds_frag[n / 2][(n % 2) * 2 + 1] = pack_bf16(ds[2], ds[3]);
            }
            const uint16_t* const k_row = k_tile + (((lane / 8) % 2) * 8 + lane % 8) * LD + (lane / 16) * 8;
            for (int kk = 0; kk < PSTEPS; ++kk) {
                for (int n = 0; n < DBLOCKS; n += 2) {
                    mma_two_blocks<true>(acc[n], acc[n + 1], ds_frag[kk], k_row + kk * 16 * LD + n * 8);
                }
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    // Each warp reads only its own 16 rows of the Q tile: after its last tile they stage its dq.
    const float unscaled[2] = {1.0f, 1.0f};
    store_rows<D>(dq + q_offset + static_cast<size_t>(warp_first) * q_stride, q_stride, T - warp_first,
                  q_s + (slot * MMA_QUERY_ROWS + warp * 16) * LD, acc, unscaled);
}

// The forward's and the dq pass's grid: B * H / HEADS * ceil(T / 64) blocks of 128 * HEADS threads.
int query_tile_blocks(const char* call, int B, int T, int H, int heads, unsigned int* blocks) {
    const long long count = static_cast<long long>(B) * (H / heads) * ((T + MMA_QUERY_ROWS - 1) / MMA_QUERY_ROWS);
    if (count > 0x7fffffffLL) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %lld blocks is too many", call, count);
    *blocks = static_cast<unsigned int>(count);
    return SPIN_OK;
}

// Query heads per forward/dq block: two heads of a GQA group share each K/V tile copied into shared
// memory, halving the K/V traffic per query row; a group of odd size (MHA included) keeps one.
int heads_per_block(int H, int KVH) {
    return (H / KVH) % 2 == 0 ? 2 : 1;
}

MmaShape mma_shape(int D, int T, int H, int KVH, int window) {
    const double scale = 1.0 / sqrt(static_cast<double>(D));  // and log2(e) / sqrt(D), each rounded once
    return MmaShape{T, H, KVH, window, static_cast<float>(1.4426950408889634 * scale), static_cast<float>(scale)};
}

template <int D, int HEADS>
int launch_dq_mma(cudaStream_t stream, void* dq, const void* dOut, const void* q, const void* k, const void* v,
                  const int32_t* keyMask, const float* lse, const float* delta, int B, int T, int H, int KVH,
                  int window) {
    unsigned int blocks = 0;
    if (int status = query_tile_blocks("spin_attention_backward", B, T, H, HEADS, &blocks)) return status;
    constexpr size_t bytes = static_cast<size_t>(4 + 2 * HEADS) * MMA_QUERY_ROWS * mma_ld<D>() * sizeof(uint16_t);
    auto* const dq_kernel = attention_dq_mma_kernel<D, HEADS>;  // a macro argument cannot hold the comma
    SPIN_CUDA_TRY(
        cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    SPIN_LAUNCH(dq_kernel, blocks, MMA_THREADS * HEADS, bytes, stream,
                static_cast<bf16*>(dq), static_cast<const bf16*>(dOut), static_cast<const bf16*>(q),
                static_cast<const bf16*>(k), static_cast<const bf16*>(v), keyMask, lse, delta,
                mma_shape(D, T, H, KVH, window));
    SPIN_LAUNCH_CHECK(attention_dq_mma_kernel);
    return SPIN_OK;
}

// dk and dv of the backward on tensor cores (FA2's key-major pass, without atomics: one block owns
// each dk/dv tile and sums every query head of its GQA group into it in a fixed order):
//   dv_j = sum_h sum_i p_ij dOut_i,  dk_j = sum_h sum_i ds_ij q_i  (p, ds as in the dq pass).
// Block: 4 warps, a tile of 64 keys of one (b, kv head), warp w owning keys 16w..16w+15 as the mma's
// M rows; the grid is B*KVH*ceil(T/64), the longest (first, under the causal mask) key tiles first.
// K and V [64][D] are copied once; then for each query head of the group in order and each 64-row
// query tile that can see the key tile (from the tile itself to T, or to the window's end), the Q
// and dOut tiles and their lse and delta stream through two shared buffers (tile n+1's copies are
// issued before tile n's mma work). Per tile a warp computes S^T = K Q^T and dP^T = V dOut^T (Q's
// and dOut's [query][d] rows as the "col" B operand), forms P^T and dS^T in fp32 registers, rounds
// them to bf16 as A operands (the C layout of 16 queries is the A layout) and adds P^T dOut and
// dS^T Q (their rows transposed by ldmatrix.trans). Numerics: P and dS rounded to bf16 before the
// products, as FA2 does; each dk/dv element summed by one lane in (head, query) order.
// Shared: K, V and 2 Q + 2 dOut buffers of [64][LD], plus 2 x 64 lse and delta floats.
template <int D>
__global__ void __launch_bounds__(MMA_THREADS)
attention_dkdv_mma_kernel(bf16* dk, bf16* dv, const bf16* dOut, const bf16* q, const bf16* k, const bf16* v,
                          const int32_t* keyMask, const float* lse, const float* delta, MmaShape shape) {
    constexpr int LD = mma_ld<D>();
    // The query tile in two chunks of 32 columns: S^T and dP^T of a chunk beside the dk and dv
    // accumulators stay within the registers at D = 128 (a whole tile's spilled).
    constexpr int CHUNK = 32, CHUNKS = MMA_QUERY_ROWS / CHUNK;
    constexpr int KSTEPS = D / 16, DBLOCKS = D / 8, SBLOCKS = CHUNK / 8, PSTEPS = CHUNK / 16;
    SPIN_DYNAMIC_SHARED(uint16_t, shared);
    uint16_t* const k_s = shared;                          // [64][LD]
    uint16_t* const v_s = k_s + MMA_KEY_ROWS * LD;         // [64][LD]
    uint16_t* const q_s = v_s + MMA_KEY_ROWS * LD;         // [2][64][LD]
    uint16_t* const do_s = q_s + 2 * MMA_QUERY_ROWS * LD;  // [2][64][LD]
    float* const lse_s = reinterpret_cast<float*>(do_s + 2 * MMA_QUERY_ROWS * LD);  // [2][64], log2 units
    float* const delta_s = lse_s + 2 * MMA_QUERY_ROWS;                              // [2][64]

    const int T = shape.T, H = shape.H, KVH = shape.KVH, W = shape.window, G = H / KVH;
    const int tiles = (T + MMA_KEY_ROWS - 1) / MMA_KEY_ROWS;
    const int tile = static_cast<int>(blockIdx.x % tiles);
    const int g = static_cast<int>(blockIdx.x / tiles) % KVH;
    const int b = static_cast<int>(blockIdx.x / tiles) / KVH;
    const int j0 = tile * MMA_KEY_ROWS, keys = min(MMA_KEY_ROWS, T - j0);
    const size_t q_stride = static_cast<size_t>(H) * D, kv_stride = static_cast<size_t>(KVH) * D;
    const size_t kv_offset = (static_cast<size_t>(b) * T * KVH + g) * D;
    const int32_t* const mask = keyMask + static_cast<size_t>(b) * T;

    // Queries [j0, query_end) see a key of the tile; tile n of the walk is head g*G + n / query_tiles.
    const int query_end = W > 0 ? min(T, j0 + keys - 1 + W) : T;
    const int query_tiles = (query_end - j0 + MMA_QUERY_ROWS - 1) / MMA_QUERY_ROWS;
    const int steps = G * query_tiles;
    auto stage = [&](int n, int buffer) {
        const int h = g * G + n / query_tiles, i0 = j0 + (n % query_tiles) * MMA_QUERY_ROWS;
        const int rows = min(MMA_QUERY_ROWS, T - i0);
        const size_t q_offset = (static_cast<size_t>(b) * T * H + h) * D + static_cast<size_t>(i0) * q_stride;
        copy_tile_async<D>(q_s + buffer * MMA_QUERY_ROWS * LD, q + q_offset, q_stride, rows);
        copy_tile_async<D>(do_s + buffer * MMA_QUERY_ROWS * LD, dOut + q_offset, q_stride, rows);
        // The statistics by plain loads: this buffer was last read before the previous step's barrier.
        const size_t stat_offset = (static_cast<size_t>(b) * H + h) * T + i0;
        for (int r = threadIdx.x; r < MMA_QUERY_ROWS; r += MMA_THREADS) {
            lse_s[buffer * MMA_QUERY_ROWS + r] = r < rows ? lse[stat_offset + r] * 1.4426950408889634f : -INFINITY;
            delta_s[buffer * MMA_QUERY_ROWS + r] = r < rows ? delta[stat_offset + r] : 0.0f;
        }
    };
    copy_tile_async<D>(k_s, k + kv_offset + static_cast<size_t>(j0) * kv_stride, kv_stride, keys);
    copy_tile_async<D>(v_s, v + kv_offset + static_cast<size_t>(j0) * kv_stride, kv_stride, keys);
    stage(0, 0);
    cp_async_commit();

    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    const int group = lane / 4, tig = lane % 4;
    const int warp_first = j0 + warp * 16;
    const int key_of[2] = {warp_first + group, warp_first + group + 8};
    const bool key_live[2] = {key_of[0] < T && mask[min(key_of[0], T - 1)] != 0,
                              key_of[1] < T && mask[min(key_of[1], T - 1)] != 0};
    float dk_acc[DBLOCKS][4], dv_acc[DBLOCKS][4];
    SPIN_UNROLL
    for (int n = 0; n < DBLOCKS; ++n) {
        SPIN_UNROLL
        for (int e = 0; e < 4; ++e) dk_acc[n][e] = dv_acc[n][e] = 0.0f;
    }

    for (int n = 0; n < steps; ++n) {
        const int buffer = n % 2;
        if (n + 1 < steps) stage(n + 1, (n + 1) % 2);
        cp_async_commit();  // possibly empty, so that one wait<1> always means "step n landed"
        cp_async_wait<1>();
        __syncthreads();

        const int i0 = j0 + (n % query_tiles) * MMA_QUERY_ROWS;
        // No key of the warp inside the tile, or every query of the tile past the window of the warp's keys.
        const bool skip = warp_first >= T || (W > 0 && i0 > warp_first + 15 + W - 1);
        if (!skip) {
            const uint16_t* const q_tile = q_s + buffer * MMA_QUERY_ROWS * LD;
            const uint16_t* const do_tile = do_s + buffer * MMA_QUERY_ROWS * LD;
            const float* const lse_t = lse_s + buffer * MMA_QUERY_ROWS;
            const float* const delta_t = delta_s + buffer * MMA_QUERY_ROWS;
            SPIN_UNROLL
            for (int chunk = 0; chunk < CHUNKS; ++chunk) {
            const int first_col = chunk * CHUNK;
            float s[SBLOCKS][4], dp[SBLOCKS][4];
            SPIN_UNROLL
            for (int c = 0; c < SBLOCKS; ++c) {
                SPIN_UNROLL
                for (int e = 0; e < 4; ++e) s[c][e] = dp[c][e] = 0.0f;
            }
            const int a_at = (warp * 16 + lane % 16) * LD + (lane / 16) * 8;
            const int b_at = ((lane / 16) * 8 + lane % 8) * LD + ((lane / 8) % 2) * 8;
            SPIN_UNROLL
            for (int kk = 0; kk < KSTEPS; ++kk) {
                uint32_t k_frag[4], v_frag[4];
                ldmatrix<4>(k_frag, k_s + a_at + kk * 16);
                ldmatrix<4>(v_frag, v_s + a_at + kk * 16);
                SPIN_UNROLL
                for (int c = 0; c < SBLOCKS; c += 2) {
                    mma_two_blocks<false>(s[c], s[c + 1], k_frag, q_tile + b_at + (first_col + c * 8) * LD + kk * 16);
                    mma_two_blocks<false>(dp[c], dp[c + 1], v_frag,
                                          do_tile + b_at + (first_col + c * 8) * LD + kk * 16);
                }
            }
            uint32_t p_frag[PSTEPS][4], ds_frag[PSTEPS][4];
            SPIN_UNROLL
            for (int c = 0; c < SBLOCKS; ++c) {
                float p[4], ds[4];
                SPIN_UNROLL
                for (int e = 0; e < 4; ++e) {
                    const int r = e / 2, j = key_of[r], col = first_col + c * 8 + tig * 2 + e % 2, i = i0 + col;
                    const float l = lse_t[col];
                    const bool visible = key_live[r] && i < T && j <= i && (W == 0 || j > i - W) && l != -INFINITY;
                    p[e] = visible ? exp2f(s[c][e] * shape.scale_log2 - l) : 0.0f;
                    ds[e] = p[e] * (dp[c][e] - delta_t[col]) * shape.scale;
                }
                p_frag[c / 2][(c % 2) * 2 + 0] = pack_bf16(p[0], p[1]);
                p_frag[c / 2][(c % 2) * 2 + 1] = pack_bf16(p[2], p[3]);
                ds_frag[c / 2][(c % 2) * 2 + 0] = pack_bf16(ds[0], ds[1]);
                ds_frag[c / 2][(c % 2) * 2 + 1] = pack_bf16(ds[2], ds[3]);
            }
            const int t_at = (((lane / 8) % 2) * 8 + lane % 8) * LD + (lane / 16) * 8;
            SPIN_UNROLL
            for (int kk = 0; kk < PSTEPS; ++kk) {
                SPIN_UNROLL
                for (int c = 0; c < DBLOCKS; c += 2) {
                    mma_two_blocks<true>(dv_acc[c], dv_acc[c + 1], p_frag[kk],
                                         do_tile + t_at + (first_col + kk * 16) * LD + c * 8);
                    mma_two_blocks<true>(dk_acc[c], dk_acc[c + 1], ds_frag[kk],
                                         q_tile + t_at + (first_col + kk * 16) * LD + c * 8);
                }
            }
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    // Each warp reads only its own 16 rows of K and V: after the walk they stage its dk and dv.
    const float unscaled[2] = {1.0f, 1.0f};
    const size_t first_row = kv_offset + static_cast<size_t>(warp_first) * kv_stride;
    store_rows<D>(dk + first_row, kv_stride, T - warp_first, k_s + warp * 16 * LD, dk_acc, unscaled);
    store_rows<D>(dv + first_row, kv_stride, T - warp_first, v_s + warp * 16 * LD, dv_acc, unscaled);
}

template <int D>
int launch_dkdv_mma(cudaStream_t stream, void* dk, void* dv, const void* dOut, const void* q, const void* k,
                    const void* v, const int32_t* keyMask, const float* lse, const float* delta, int B, int T, int H,
                    int KVH, int window) {
    const long long blocks = static_cast<long long>(B) * KVH * ((T + MMA_KEY_ROWS - 1) / MMA_KEY_ROWS);
    if (blocks > 0x7fffffffLL) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_attention_backward: %lld blocks is too many", blocks);
    }
    const MmaShape shape = mma_shape(D, T, H, KVH, window);
    constexpr size_t bytes = static_cast<size_t>(6) * MMA_QUERY_ROWS * mma_ld<D>() * sizeof(uint16_t) +
                             static_cast<size_t>(4) * MMA_QUERY_ROWS * sizeof(float);
    SPIN_CUDA_TRY(cudaFuncSetAttribute(attention_dkdv_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
    SPIN_LAUNCH(attention_dkdv_mma_kernel<D>, static_cast<unsigned int>(blocks), MMA_THREADS, bytes, stream,
                static_cast<bf16*>(dk), static_cast<bf16*>(dv), static_cast<const bf16*>(dOut),
                static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), keyMask, lse,
                delta, shape);
    SPIN_LAUNCH_CHECK(attention_dkdv_mma_kernel);
    return SPIN_OK;
}

template <int D, int HEADS>
int launch_forward_mma(cudaStream_t stream, void* out, float* lse, const void* q, const void* k, const void* v,
                       const int32_t* keyMask, int B, int T, int H, int KVH, int window) {
    unsigned int blocks = 0;
    if (int status = query_tile_blocks("spin_attention_forward", B, T, H, HEADS, &blocks)) return status;
    constexpr size_t bytes = static_cast<size_t>(4 + HEADS) * MMA_QUERY_ROWS * mma_ld<D>() * sizeof(uint16_t);
    auto* const forward_kernel = attention_forward_mma_kernel<D, HEADS>;  // a macro argument cannot hold the comma
    if (bytes > DEFAULT_SHARED) {
        SPIN_CUDA_TRY(cudaFuncSetAttribute(forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
    }
    SPIN_LAUNCH(forward_kernel, blocks, MMA_THREADS * HEADS, bytes, stream,
                static_cast<bf16*>(out), lse, static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                static_cast<const bf16*>(v), keyMask, mma_shape(D, T, H, KVH, window));
    SPIN_LAUNCH_CHECK(attention_forward_mma_kernel);
    return SPIN_OK;
}

}  // namespace

namespace spin {

bool attention_mma_supports(int dtype, int D, std::initializer_list<const void*> tensors) {
    if (dtype != SPIN_DTYPE_BF16 || (D != 64 && D != 128)) return false;
    for (const void* tensor : tensors) {
        if (reinterpret_cast<uintptr_t>(tensor) % 16 != 0) return false;
    }
    return true;
}

int attention_forward_mma(cudaStream_t stream, void* out, float* lse, const void* q, const void* k, const void* v,
                          const int32_t* keyMask, int B, int T, int H, int KVH, int D, int window) {
    switch (D) {
        case 64:
            return heads_per_block(H, KVH) == 2
                       ? launch_forward_mma<64, 2>(stream, out, lse, q, k, v, keyMask, B, T, H, KVH, window)
                       : launch_forward_mma<64, 1>(stream, out, lse, q, k, v, keyMask, B, T, H, KVH, window);
        case 128:
            return heads_per_block(H, KVH) == 2
                       ? launch_forward_mma<128, 2>(stream, out, lse, q, k, v, keyMask, B, T, H, KVH, window)
                       : launch_forward_mma<128, 1>(stream, out, lse, q, k, v, keyMask, B, T, H, KVH, window);
        default:
            return fail(SPIN_ERR_INVALID_ARG, "spin_attention_forward: the tensor-core kernel has no head dim %d", D);
    }
}

int attention_dq_mma(cudaStream_t stream, void* dq, const void* dOut, const void* q, const void* k, const void* v,
                     const int32_t* keyMask, const float* lse, const float* delta, int B, int T, int H, int KVH, int D,
                     int window) {
    switch (D) {
        case 64:
            return heads_per_block(H, KVH) == 2
                       ? launch_dq_mma<64, 2>(stream, dq, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, window)
                       : launch_dq_mma<64, 1>(stream, dq, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, window);
        case 128:
            return heads_per_block(H, KVH) == 2
                       ? launch_dq_mma<128, 2>(stream, dq, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, window)
                       : launch_dq_mma<128, 1>(stream, dq, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, window);
        default:
            return fail(SPIN_ERR_INVALID_ARG, "spin_attention_backward: the tensor-core dq has no head dim %d", D);
    }
}

int attention_dkdv_mma(cudaStream_t stream, void* dk, void* dv, const void* dOut, const void* q, const void* k,
                       const void* v, const int32_t* keyMask, const float* lse, const float* delta, int B, int T, int H,
                       int KVH, int D, int window) {
    switch (D) {
        case 64:
            return launch_dkdv_mma<64>(stream, dk, dv, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, window);
        case 128:
            return launch_dkdv_mma<128>(stream, dk, dv, dOut, q, k, v, keyMask, lse, delta, B, T, H, KVH, window);
        default:
            return fail(SPIN_ERR_INVALID_ARG, "spin_attention_backward: the tensor-core dk/dv has no head dim %d", D);
    }
}

}  // namespace spin
