// Row scatter, the write of new keys and values into the paged KV cache:
//   dst[rows[m], :] = src[m, :]   for m < M, skipping rows[m] outside [0, R)
// Shapes: dst [R,W], src [M,W] of the compute dtype (fp32 or bf16: only its element size matters,
// rows are copied as raw bits), rows [M].
//
// When two m name the same row the last one wins, as in CpuBackend.scatterRows' in-order copies: a
// block handling rows m0 .. m0+31 first scans rows (m0, M) for later writers of the same target
// and leaves those rows out, so no two blocks ever write one row and the result never depends on
// scheduling. Tiling 32 rows per block keeps that scan at M * M / 32 index reads in all.
#include "block_reduce.cuh"
#include "dtype.cuh"
#include "internal.h"
#include "ptx.cuh"

namespace {

constexpr int SCATTER_BLOCK = 256;
// Rows per block: one bit each in the 32-bit "written again later" mask.
constexpr int SCATTER_ROWS = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;

// Copy units: the widest whose size divides the row bytes and both base addresses (Pack16, Unit8, ...).
struct alignas(8) Unit8 {
    uint32_t words[2];
};

template <class Unit>
__device__ __forceinline__ void copy_row(char* dst, const char* src, size_t row_bytes) {
    Unit* const to = reinterpret_cast<Unit*>(dst);
    const Unit* const from = reinterpret_cast<const Unit*>(src);
    const size_t units = row_bytes / sizeof(Unit);
    for (size_t u = threadIdx.x; u < units; u += SCATTER_BLOCK) to[u] = from[u];
}

__global__ void __launch_bounds__(SCATTER_BLOCK)
scatter_rows_kernel(char* dst, const char* src, const int32_t* rows, int M, int R, size_t row_bytes, int unit_bytes) {
    __shared__ int targets[SCATTER_ROWS];
    __shared__ unsigned warp_masks[SCATTER_BLOCK / WARP_SIZE];
    const int first = blockIdx.x * SCATTER_ROWS;
    const int count = min(SCATTER_ROWS, M - first);
    if (threadIdx.x < SCATTER_ROWS) {
        targets[threadIdx.x] = static_cast<int>(threadIdx.x) < count ? rows[first + threadIdx.x] : -1;
    }
    __syncthreads();

    // Bit j: some m > first + j writes targets[j] again, so row first + j must not be copied.
    int target[SCATTER_ROWS];
    SPIN_UNROLL
    for (int j = 0; j < SCATTER_ROWS; ++j) target[j] = targets[j];
    unsigned superseded = 0;
    for (int64_t m = first + 1 + static_cast<int64_t>(threadIdx.x); m < M; m += SCATTER_BLOCK) {
        const int row = rows[m];
        if (row < 0 || row >= R) continue;
        SPIN_UNROLL
        for (int j = 0; j < SCATTER_ROWS; ++j) {
            if (row == target[j] && m > first + j) superseded |= 1u << j;
        }
    }
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        superseded |= __shfl_xor_sync(FULL_MASK, superseded, offset);
    }
    if (threadIdx.x % WARP_SIZE == 0) warp_masks[threadIdx.x / WARP_SIZE] = superseded;
    __syncthreads();
    unsigned skip = 0;
    for (int w = 0; w < SCATTER_BLOCK / WARP_SIZE; ++w) skip |= warp_masks[w];

    for (int j = 0; j < count; ++j) {
        const int row = targets[j];  // shared, not target[]: a variable index would spill those registers
        if (row < 0 || row >= R || ((skip >> j) & 1u)) continue;
        char* const to = dst + static_cast<size_t>(row) * row_bytes;
        const char* const from = src + static_cast<size_t>(first + j) * row_bytes;
        switch (unit_bytes) {
            case 16: copy_row<Pack16>(to, from, row_bytes); break;
            case 8: copy_row<Unit8>(to, from, row_bytes); break;
            case 4: copy_row<uint32_t>(to, from, row_bytes); break;
            default: copy_row<uint16_t>(to, from, row_bytes); break;
        }
    }
}

int widest_unit(const void* dst, const void* src, size_t row_bytes) {
    const uintptr_t bits = reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | row_bytes;
    for (int unit : {16, 8, 4}) {
        if (bits % unit == 0) return unit;
    }
    return 2;
}

}  // namespace

extern "C" {

int spin_scatter_rows(spin_stream_t stream, int dtype, void* dst, const void* src, const int32_t* rows, int M, int W,
                      int R) {
    const char* call = "spin_scatter_rows";
    // The element size is all the copy needs; the dtype is checked first, whatever the sizes.
    return spin::with_dtype(call, dtype, [&](auto element) -> int {
        if (M < 0 || W < 0 || R < 0) {
            return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need M, W, R >= 0, got M=%d W=%d R=%d", call, M, W, R);
        }
        // R == 0: every row is out of range, so nothing is written.
        if (M == 0 || W == 0 || R == 0) return SPIN_OK;
        if (!dst || !src || !rows) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: NULL tensor pointer", call);
        const size_t row_bytes = static_cast<size_t>(W) * sizeof(element);
        const int blocks = static_cast<int>((static_cast<int64_t>(M) + SCATTER_ROWS - 1) / SCATTER_ROWS);
        SPIN_LAUNCH(scatter_rows_kernel, blocks, SCATTER_BLOCK, 0, spin::to_cuda(stream), static_cast<char*>(dst),
                    static_cast<const char*>(src), rows, M, R, row_bytes, widest_unit(dst, src, row_bytes));
        SPIN_LAUNCH_CHECK(scatter_rows_kernel);
        return SPIN_OK;
    });
}

}  // extern "C"
