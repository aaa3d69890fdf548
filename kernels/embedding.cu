// Token embedding lookup, on fp32 or bf16 activations (dTable in fp32):
//   forward:  out[n,:] = table[ids[n],:]; an id outside [0,V) gives a NaN row (never read through)
//   backward: dTable[v,:] += dOut[n,:] for every n with ids[n] == v, in increasing n; ids outside
//             [0,V) are skipped
// Shapes: ids [N]; table [V,C] and out, dOut [N,C] of the compute dtype T; dTable [V,C] fp32.
// The forward copies elements of T as they are; the backward widens each dOut element to fp32
// and sums in fp32.
//
// The backward has no float atomics: row n owns id ids[n] when n is that id's first occurrence,
// and only the block holding the owner row writes dTable[id,:], adding the id's rows one after
// another onto the old value: the same float operations, in the same order, as
// CpuBackend.embeddingBackward, so the result is the same bits on every run and every device.
// Finding first occurrences and the later rows scans ids, O(N) per distinct id (a non-owner stops
// at the first earlier match); for N = 32K tokens that is well under a millisecond, once a step.
// The owner's whole block (not one warp) sums its id's rows, with several loads in flight per
// thread, so that a frequent id (padding, punctuation) does not serialise the kernel.
#include "block_reduce.cuh"
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int EMBEDDING_BLOCK = 256;
constexpr int EMBEDDING_WARPS = EMBEDDING_BLOCK / WARP_SIZE;
// Rows per block: one warp each, in the forward and in the backward's first-occurrence test.
constexpr int ROWS_PER_BLOCK = EMBEDDING_WARPS;
// ids each lane loads per step of a warp's scan, and each thread per step of the block's:
// independent loads in flight hide the latency of the scans.
constexpr int WARP_SCAN_ITEMS = 8;
constexpr int WARP_SCAN_CHUNK = WARP_SIZE * WARP_SCAN_ITEMS;
constexpr int BLOCK_SCAN_ITEMS = 4;
constexpr int BLOCK_SCAN_CHUNK = EMBEDDING_BLOCK * BLOCK_SCAN_ITEMS;
// dOut rows whose loads a thread issues before adding them, in order, to its column's sum.
constexpr int SUM_UNROLL = 8;
constexpr unsigned FULL_MASK = 0xffffffffu;

// Warp w of block b copies row 8b + w, lanes across columns.
template <typename T>
__global__ void __launch_bounds__(EMBEDDING_BLOCK)
embedding_forward_kernel(T* out, const int32_t* ids, const T* table, int N, int C, int V) {
    const int n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP_SIZE;
    if (n >= N) return;
    const int lane = threadIdx.x % WARP_SIZE;
    const int id = ids[n];
    T* row = out + static_cast<size_t>(n) * C;
    if (id < 0 || id >= V) {
        const T nan = from_f32<T>(__uint_as_float(0x7fc00000u));
        for (int c = lane; c < C; c += WARP_SIZE) row[c] = nan;
        return;
    }
    const T* source = table + static_cast<size_t>(id) * C;
    for (int c = lane; c < C; c += WARP_SIZE) row[c] = source[c];
}

// Whether ids[m] == id for some m < n, by one whole warp (all 32 lanes, same n and id).
__device__ bool seen_before(const int32_t* ids, int id, int n) {
    const int lane = threadIdx.x % WARP_SIZE;
    for (int64_t start = 0; start < n; start += WARP_SCAN_CHUNK) {
        bool match = false;
        for (int k = 0; k < WARP_SCAN_ITEMS; ++k) {
            const int64_t m = start + k * WARP_SIZE + lane;
            match |= m < n && ids[m] == id;
        }
        if (__any_sync(FULL_MASK, match)) return true;
    }
    return false;
}

// By the whole block: matches[0 .. count) = the m in [start, min(start + BLOCK_SCAN_CHUNK, end)) with
// ids[m] == id, in increasing m; returns count to every thread. The list stays valid until the next
// call, whose first barrier waits for every reader of this one.
__device__ int collect_matches(unsigned (*votes)[EMBEDDING_WARPS], int* matches, const int32_t* ids, int id,
                               int64_t start, int64_t end) {
    __syncthreads();
    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    bool match[BLOCK_SCAN_ITEMS];
    for (int k = 0; k < BLOCK_SCAN_ITEMS; ++k) {
        const int64_t m = start + k * EMBEDDING_BLOCK + threadIdx.x;
        match[k] = m < end && ids[m] == id;
    }
    for (int k = 0; k < BLOCK_SCAN_ITEMS; ++k) {
        const unsigned ballot = __ballot_sync(FULL_MASK, match[k]);
        if (lane == 0) votes[k][warp] = ballot;
    }
    __syncthreads();
    // m = start + k * BLOCK + 32 w + l is bit l of votes[k][w]: counting the set bits before a
    // thread's own, in (k, w, l) order, gives its place in the increasing list.
    int count = 0;
    for (int k = 0; k < BLOCK_SCAN_ITEMS; ++k) {
        for (int w = 0; w < EMBEDDING_WARPS; ++w) {
            const unsigned bits = votes[k][w];
            if (match[k] && w == warp) {
                matches[count + __popc(bits & ((1u << lane) - 1u))] =
                    static_cast<int>(start + k * EMBEDDING_BLOCK + threadIdx.x);
            }
            count += __popc(bits);
        }
    }
    __syncthreads();
    return count;
}

// Block b, rows n = 8b .. 8b + 7. First each warp decides whether its row is the first occurrence
// of a valid id; then, for each such owner in row order, the whole block scans ids[n .. N) for
// that id's rows and thread t adds them, in increasing m, to columns t, t + BLOCK, ... of
// dTable[id, :]. Only the owner block ever writes that row.
template <typename T>
__global__ void __launch_bounds__(EMBEDDING_BLOCK)
embedding_backward_kernel(float* dTable, const int32_t* ids, const T* dOut, int N, int C, int V) {
    __shared__ int owned_ids[ROWS_PER_BLOCK];  // -1: the warp's row owns nothing
    __shared__ unsigned votes[BLOCK_SCAN_ITEMS][EMBEDDING_WARPS];
    __shared__ int matches[BLOCK_SCAN_CHUNK];
    const int first_row = blockIdx.x * ROWS_PER_BLOCK;
    {
        const int warp = threadIdx.x / WARP_SIZE;
        const int n = first_row + warp;
        int owned = -1;
        if (n < N) {
            const int id = ids[n];
            if (id >= 0 && id < V && !seen_before(ids, id, n)) owned = id;
        }
        if (threadIdx.x % WARP_SIZE == 0) owned_ids[warp] = owned;
    }
    __syncthreads();

    for (int r = 0; r < ROWS_PER_BLOCK; ++r) {
        const int id = owned_ids[r];
        if (id < 0) continue;
        float* const table_row = dTable + static_cast<size_t>(id) * C;
        for (int64_t start = first_row + r; start < N; start += BLOCK_SCAN_CHUNK) {
            const int count = collect_matches(votes, matches, ids, id, start, N);
            for (int c = threadIdx.x; c < C && count > 0; c += EMBEDDING_BLOCK) {
                float sum = table_row[c];
                int j = 0;
                for (; j + SUM_UNROLL <= count; j += SUM_UNROLL) {
                    float terms[SUM_UNROLL];
                    for (int q = 0; q < SUM_UNROLL; ++q) {
                        terms[q] = to_f32(dOut[static_cast<size_t>(matches[j + q]) * C + c]);
                    }
                    for (int q = 0; q < SUM_UNROLL; ++q) sum += terms[q];
                }
                for (; j < count; ++j) sum += to_f32(dOut[static_cast<size_t>(matches[j]) * C + c]);
                table_row[c] = sum;
            }
        }
    }
}

int blocks(int N) { return static_cast<int>((static_cast<int64_t>(N) + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

int check_shape(const char* call, int N, int C, int V) {
    if (N >= 0 && C >= 0 && V >= 0) return SPIN_OK;
    return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need N, C, V >= 0, got N=%d C=%d V=%d", call, N, C, V);
}

}  // namespace

extern "C" {

int spin_embedding_forward(spin_stream_t stream, int dtype, void* out, const int32_t* ids, const void* table, int N,
                           int C, int V) {
    if (int status = check_shape("spin_embedding_forward", N, C, V)) return status;
    if (N == 0 || C == 0) return SPIN_OK;
    // An empty table (V == 0) is never read: every row comes out NaN.
    if (!out || !ids || (!table && V > 0)) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_embedding_forward: NULL tensor pointer");
    }
    return spin::with_dtype("spin_embedding_forward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(embedding_forward_kernel<T>, blocks(N), EMBEDDING_BLOCK, 0, spin::to_cuda(stream),
                    static_cast<T*>(out), ids, static_cast<const T*>(table), N, C, V);
        SPIN_LAUNCH_CHECK(embedding_forward_kernel);
        return SPIN_OK;
    });
}

int spin_embedding_backward(spin_stream_t stream, int dtype, float* dTable, const int32_t* ids, const void* dOut,
                            int N, int C, int V) {
    if (int status = check_shape("spin_embedding_backward", N, C, V)) return status;
    // With V == 0 every id is out of range and dTable is empty.
    if (N == 0 || C == 0 || V == 0) return SPIN_OK;
    if (!dTable || !ids || !dOut) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_embedding_backward: NULL tensor pointer");
    }
    return spin::with_dtype("spin_embedding_backward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(embedding_backward_kernel<T>, blocks(N), EMBEDDING_BLOCK, 0, spin::to_cuda(stream), dTable, ids,
                    static_cast<const T*>(dOut), N, C, V);
        SPIN_LAUNCH_CHECK(embedding_backward_kernel);
        return SPIN_OK;
    });
}

}  // extern "C"
