// RMSNorm as in HF Mistral, on fp32 or bf16 activations (statistics and dWeight in fp32):
// forward (alone, or fused with the residual add before it) and backward with their launchers.
//   forward:  rstd[n] = 1 / sqrt(mean(in[n,:]^2) + eps);  out[n,c] = (in[n,c] * rstd[n]) * weight[c]
//   backward: dIn[n,c] = rstd * (weight[c] * dOut[n,c] - in[n,c] * rstd^2 * dot[n] / C),
//             dot[n] = sum_c dOut[n,c] * weight[c] * in[n,c];
//             dWeight[c] += sum_n dOut[n,c] * in[n,c] * rstd[n]
// Shapes: in, out, dIn, dOut [N,C] and weight [C] of the compute dtype T; dWeight [C], rstd [N] fp32.
#include "block_reduce.cuh"
#include "dtype.cuh"
#include "internal.h"

namespace {

constexpr int RMSNORM_BLOCK = 256;
// Rows one backward block handles. Fixed, not tuned to the device, because it sets the order in
// which dWeight's per-row terms are summed: the same N and C give the same bits on every GPU.
constexpr int RMSNORM_BACKWARD_ROWS = 8;
// Block shape of the dWeight reduction: 32 columns (one coalesced warp) by 8 partial-row lanes.
constexpr int REDUCE_COLUMNS = 32;
constexpr int REDUCE_LANES = 8;
// Shared memory (static plus dynamic) a kernel may use without opting in to more.
constexpr size_t DEFAULT_SHARED_LIMIT = 48 * 1024;
constexpr size_t BLOCK_SUM_SHARED_BYTES = RMSNORM_BLOCK / WARP_SIZE * sizeof(float);

// The row body both forward kernels share, so the fused add + norm gives rmsnorm's bits: each thread's
// partial sum of squares over columns t, t + BLOCK, ... reduced in block_sum's fixed order, then the scale.
__device__ float rmsnorm_row_rstd(float sum_squares, float* warp_sums, int C, float eps) {
    sum_squares = block_sum<RMSNORM_BLOCK>(sum_squares, warp_sums);
    // 1/sqrtf rather than the approximate rsqrtf: correctly rounded, as the CPU op computes it.
    return 1.0f / sqrtf(sum_squares / C + eps);
}

template <typename T>
__device__ void rmsnorm_row_scale(T* y, const T* x, const T* weight, int C, float r) {
    for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) y[c] = from_f32<T>((to_f32(x[c]) * r) * to_f32(weight[c]));
}

// One block per row: the row is read once for the sum of squares and again (from cache) to scale.
template <typename T>
__global__ void __launch_bounds__(RMSNORM_BLOCK)
rmsnorm_forward_kernel(T* out, float* rstd, const T* in, const T* weight, int C, float eps) {
    __shared__ float warp_sums[RMSNORM_BLOCK / WARP_SIZE];
    const size_t row_offset = static_cast<size_t>(blockIdx.x) * C;
    const T* x = in + row_offset;

    float sum_squares = 0.0f;
    for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) {
        const float xc = to_f32(x[c]);
        sum_squares += xc * xc;
    }
    const float r = rmsnorm_row_rstd(sum_squares, warp_sums, C, eps);
    rmsnorm_row_scale(out + row_offset, x, weight, C, r);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// add then rmsnorm in one pass over a and b: the sum is rounded to T before it is squared, as
// add_kernel (kernels/elementwise.cu) stores it. Each thread scales back only the columns it wrote,
// so it reads its own stores and needs no barrier. sum may alias a or b; out aliases none.
template <typename T>
__global__ void __launch_bounds__(RMSNORM_BLOCK)
add_rmsnorm_forward_kernel(T* sum, T* out, float* rstd, const T* a, const T* b, const T* weight, int C, float eps) {
    __shared__ float warp_sums[RMSNORM_BLOCK / WARP_SIZE];
    const size_t row_offset = static_cast<size_t>(blockIdx.x) * C;
    T* s = sum + row_offset;

    float sum_squares = 0.0f;
    for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) {
        const T rounded = from_f32<T>(to_f32(a[row_offset + c]) + to_f32(b[row_offset + c]));
        s[c] = rounded;
        const float xc = to_f32(rounded);
        sum_squares += xc * xc;
    }
    const float r = rmsnorm_row_rstd(sum_squares, warp_sums, C, eps);
    rmsnorm_row_scale(out + row_offset, static_cast<const T*>(s), weight, C, r);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// Block b handles rows [b * ROWS, b * ROWS + ROWS): writes their dIn and its own partial dWeight
// row, partial[b, :], summed over those rows in row order. Thread t owns columns t, t + BLOCK, ...
// of the shared accumulator, so the accumulation needs neither atomics nor barriers.
template <typename T>
__global__ void __launch_bounds__(RMSNORM_BLOCK)
rmsnorm_backward_kernel(T* dIn, float* partial, const T* dOut, const T* in, const T* weight, const float* rstd, int N,
                        int C) {
    SPIN_DYNAMIC_SHARED(float, dweight_acc);  // [C]
    __shared__ float warp_sums[BLOCK_SUM_SHARED_BYTES / sizeof(float)];
    for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) dweight_acc[c] = 0.0f;

    const int first_row = blockIdx.x * RMSNORM_BACKWARD_ROWS;
    const int end_row = min(first_row + RMSNORM_BACKWARD_ROWS, N);
    for (int row = first_row; row < end_row; ++row) {
        const size_t row_offset = static_cast<size_t>(row) * C;
        const T* x = in + row_offset;
        const T* dy = dOut + row_offset;
        T* dx = dIn + row_offset;
        const float r = rstd[row];

        float dot = 0.0f;
        for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) dot += to_f32(dy[c]) * to_f32(weight[c]) * to_f32(x[c]);
        dot = block_sum<RMSNORM_BLOCK>(dot, warp_sums);

        const float x_coefficient = r * r * dot / C;
        for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) {
            const float xc = to_f32(x[c]);
            const float dyc = to_f32(dy[c]);
            dx[c] = from_f32<T>(r * (to_f32(weight[c]) * dyc - xc * x_coefficient));
            dweight_acc[c] += dyc * (xc * r);
        }
    }
    float* partial_row = partial + static_cast<size_t>(blockIdx.x) * C;
    for (int c = threadIdx.x; c < C; c += RMSNORM_BLOCK) partial_row[c] = dweight_acc[c];
}

// dWeight[c] += sum over b of partial[b, c]. Lane l sums partial rows l, l + LANES, ... in order;
// lane 0 then adds the lane sums in lane order.
__global__ void __launch_bounds__(REDUCE_COLUMNS * REDUCE_LANES)
rmsnorm_dweight_reduce_kernel(float* dWeight, const float* partial, int partial_rows, int C) {
    __shared__ float lane_sums[REDUCE_LANES][REDUCE_COLUMNS];
    const int c = blockIdx.x * REDUCE_COLUMNS + threadIdx.x;
    float sum = 0.0f;
    if (c < C) {
        for (int b = threadIdx.y; b < partial_rows; b += REDUCE_LANES) sum += partial[static_cast<size_t>(b) * C + c];
    }
    lane_sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int lane = 0; lane < REDUCE_LANES; ++lane) total += lane_sums[lane][threadIdx.x];
        dWeight[c] += total;
    }
}

int backward_blocks(int N) { return (N + RMSNORM_BACKWARD_ROWS - 1) / RMSNORM_BACKWARD_ROWS; }

int check_shape(const char* call, int N, int C) {
    if (N >= 0 && C > 0) return SPIN_OK;
    return spin::fail(SPIN_ERR_INVALID_ARG, "%s: need N >= 0 and C > 0, got N=%d C=%d", call, N, C);
}

}  // namespace

extern "C" {

int spin_rmsnorm_forward(spin_stream_t stream, int dtype, void* out, float* rstd, const void* in, const void* weight,
                         int N, int C, float eps) {
    if (int status = check_shape("spin_rmsnorm_forward", N, C)) return status;
    if (N == 0) return SPIN_OK;
    if (!out || !rstd || !in || !weight) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rmsnorm_forward: NULL tensor pointer");
    }
    return spin::with_dtype("spin_rmsnorm_forward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(rmsnorm_forward_kernel<T>, N, RMSNORM_BLOCK, 0, spin::to_cuda(stream), static_cast<T*>(out), rstd,
                    static_cast<const T*>(in), static_cast<const T*>(weight), C, eps);
        SPIN_LAUNCH_CHECK(rmsnorm_forward_kernel);
        return SPIN_OK;
    });
}

int spin_add_rmsnorm_forward(spin_stream_t stream, int dtype, void* sum, void* out, float* rstd, const void* a,
                             const void* b, const void* weight, int N, int C, float eps) {
    if (int status = check_shape("spin_add_rmsnorm_forward", N, C)) return status;
    if (N == 0) return SPIN_OK;
    if (!sum || !out || !rstd || !a || !b || !weight) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_add_rmsnorm_forward: NULL tensor pointer");
    }
    if (out == sum || out == a || out == b) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_add_rmsnorm_forward: out may not alias sum, a or b");
    }
    return spin::with_dtype("spin_add_rmsnorm_forward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        SPIN_LAUNCH(add_rmsnorm_forward_kernel<T>, N, RMSNORM_BLOCK, 0, spin::to_cuda(stream), static_cast<T*>(sum),
                    static_cast<T*>(out), rstd, static_cast<const T*>(a), static_cast<const T*>(b),
                    static_cast<const T*>(weight), C, eps);
        SPIN_LAUNCH_CHECK(add_rmsnorm_forward_kernel);
        return SPIN_OK;
    });
}

int spin_rmsnorm_backward_scratch_bytes(int N, int C, size_t* out) {
    if (int status = check_shape("spin_rmsnorm_backward_scratch_bytes", N, C)) return status;
    if (!out) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rmsnorm_backward_scratch_bytes: NULL out");
    *out = static_cast<size_t>(backward_blocks(N)) * C * sizeof(float);
    return SPIN_OK;
}

int spin_rmsnorm_backward(spin_stream_t stream, int dtype, void* dIn, float* dWeight, float* scratch, const void* dOut,
                          const void* in, const void* weight, const float* rstd, int N, int C) {
    if (int status = check_shape("spin_rmsnorm_backward", N, C)) return status;
    if (N == 0) return SPIN_OK;
    if (!dIn || !dWeight || !scratch || !dOut || !in || !weight || !rstd) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rmsnorm_backward: NULL tensor pointer");
    }
    const size_t shared_bytes = static_cast<size_t>(C) * sizeof(float);
    const cudaStream_t cuda_stream = spin::to_cuda(stream);
    const int blocks = backward_blocks(N);
    const int status = spin::with_dtype("spin_rmsnorm_backward", dtype, [&](auto element) -> int {
        using T = decltype(element);
        if (shared_bytes + BLOCK_SUM_SHARED_BYTES > DEFAULT_SHARED_LIMIT) {
            SPIN_CUDA_TRY(cudaFuncSetAttribute(rmsnorm_backward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(shared_bytes)));
        }
        SPIN_LAUNCH(rmsnorm_backward_kernel<T>, blocks, RMSNORM_BLOCK, shared_bytes, cuda_stream, static_cast<T*>(dIn),
                    scratch, static_cast<const T*>(dOut), static_cast<const T*>(in), static_cast<const T*>(weight), rstd,
                    N, C);
        SPIN_LAUNCH_CHECK(rmsnorm_backward_kernel);
        return SPIN_OK;
    });
    if (status != SPIN_OK) return status;
    const dim3 reduce_block(REDUCE_COLUMNS, REDUCE_LANES);
    const int reduce_blocks = (C + REDUCE_COLUMNS - 1) / REDUCE_COLUMNS;
    SPIN_LAUNCH(rmsnorm_dweight_reduce_kernel, reduce_blocks, reduce_block, 0, cuda_stream, dWeight, scratch, blocks, C);
    SPIN_LAUNCH_CHECK(rmsnorm_dweight_reduce_kernel);
    return SPIN_OK;
}

}  // extern "C"
