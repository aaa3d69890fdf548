// Per-sequence log-prob sums and the SPIN loss (java/spin/backend/cpu/SpinLoss.java), with their
// backwards. All inputs and gradients fp32 [B] except the row sums' in/dIn [B,T].
//   row sum:   out[b] = sum_t in[b,t], in double in increasing t, rounded once (as the CPU op);
//              dIn[b,t] = dOut[b]
//   loss:      real = beta * (policyReal - opponentReal), generated = beta * (policyGenerated -
//              opponentGenerated), z = real - generated, in double;
//              loss = mean(softplus(-z)) (sigmoid) or mean(max(0, 1 - z)) (hinge);
//              stats = loss, mean real, mean generated, mean(real > generated), mean real - mean
//              generated, mean policyReal, mean policyGenerated (SPIN_LOSS_STATS doubles)
//   backward:  z = beta * ((policyReal - policyGenerated) - (opponentReal - opponentGenerated));
//              dPolicyReal = (float) (float(lossScale * beta) * dLoss/dz / B), dLoss/dz =
//              -1 / (1 + e^z) (sigmoid) or (1 - z > 0 ? -1 : 0) (hinge); dPolicyGenerated = -that
// Products go through __dmul_rn/__fmul_rn: nvcc would otherwise fuse a product into a following
// add (real - generated, rewardReal += real), which rounds differently from Java.
#include <cstdint>

#include "internal.h"
#include "ptx.cuh"

namespace {

// Row sums: a block per ROW_SUM_ROWS rows. The block copies [ROW_SUM_ROWS][ROW_SUM_COLS] tiles of
// its rows through shared memory with coalesced loads (per load the block reads 512 contiguous
// bytes of one row, 128 per warp), and thread r < ROW_SUM_ROWS adds row r's values of the tile in increasing t in double: the
// CPU op's order, so its bits exactly. The loads of tile n + 1 are issued into registers before
// tile n is summed, so they are in flight during the sums. (One thread per row reading the row
// itself, as before, left most of the GPU idle on the model's [rows, vocab] logit sums and read
// memory 4 bytes at a time from rows 128 KB apart.)
constexpr int ROW_SUM_ROWS = 32;
constexpr int ROW_SUM_COLS = 128;
constexpr int ROW_SUM_BLOCK = 128;
constexpr int ROW_SUM_PER_THREAD = ROW_SUM_ROWS * ROW_SUM_COLS / ROW_SUM_BLOCK;
constexpr int BROADCAST_BLOCK = 256;

__global__ void __launch_bounds__(ROW_SUM_BLOCK) row_sum_forward_kernel(float* out, const float* in, int B, int T) {
    __shared__ float tile[ROW_SUM_ROWS][ROW_SUM_COLS + 1];  // odd row length: thread r reads row r conflict-free
    const int first_row = static_cast<int>(blockIdx.x) * ROW_SUM_ROWS, rows = min(ROW_SUM_ROWS, B - first_row);
    const float* const block_in = in + static_cast<size_t>(first_row) * T;
    float next[ROW_SUM_PER_THREAD];
    // Element k of this thread in the tile at column c0: row (threadIdx + k * BLOCK) / COLS.
    auto load = [&](int c0) {
        SPIN_UNROLL
        for (int k = 0; k < ROW_SUM_PER_THREAD; ++k) {
            const int e = static_cast<int>(threadIdx.x) + k * ROW_SUM_BLOCK;
            const int r = e / ROW_SUM_COLS, c = c0 + e % ROW_SUM_COLS;
            next[k] = r < rows && c < T ? block_in[static_cast<size_t>(r) * T + c] : 0.0f;
        }
    };
    double sum = 0;
    load(0);
    for (int c0 = 0; c0 < T; c0 += ROW_SUM_COLS) {
        __syncthreads();  // the previous tile's sums are done
        SPIN_UNROLL
        for (int k = 0; k < ROW_SUM_PER_THREAD; ++k) {
            const int e = static_cast<int>(threadIdx.x) + k * ROW_SUM_BLOCK;
            tile[e / ROW_SUM_COLS][e % ROW_SUM_COLS] = next[k];
        }
        __syncthreads();
        if (c0 + ROW_SUM_COLS < T) load(c0 + ROW_SUM_COLS);
        if (static_cast<int>(threadIdx.x) < rows) {
            const int count = min(ROW_SUM_COLS, T - c0);
            for (int c = 0; c < count; ++c) sum += tile[threadIdx.x][c];
        }
    }
    if (static_cast<int>(threadIdx.x) < rows) out[first_row + threadIdx.x] = static_cast<float>(sum);
}

__global__ void __launch_bounds__(BROADCAST_BLOCK)
row_sum_backward_kernel(float* dIn, const float* dOut, size_t count, int T) {
    const size_t i = static_cast<size_t>(blockIdx.x) * BROADCAST_BLOCK + threadIdx.x;
    if (i < count) dIn[i] = dOut[i / T];
}

// log(1 + e^x) without overflow, as SpinLoss.softplus.
__device__ __forceinline__ double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

// One thread: the seven sums are SpinLoss.forward's loop, in increasing b, so the order (and for
// correctly rounded steps the bits) is the CPU's. B is a batch of pairs, a few thousand at most.
__global__ void spin_loss_forward_kernel(double* stats, const float* policyReal, const float* policyGenerated,
                                         const float* opponentReal, const float* opponentGenerated, int B,
                                         float beta, int type) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    const double beta_d = beta;
    double loss = 0, reward_real = 0, reward_generated = 0, accuracy = 0, logp_real = 0, logp_generated = 0;
    for (int i = 0; i < B; ++i) {
        const double real = __dmul_rn(beta_d, static_cast<double>(policyReal[i]) - opponentReal[i]);
        const double generated = __dmul_rn(beta_d, static_cast<double>(policyGenerated[i]) - opponentGenerated[i]);
        const double z = real - generated;
        if (type == SPIN_LOSS_SIGMOID) {
            loss += softplus(-z);
        } else {
            // Math.max(0, 1 - z): NaN stays NaN, where fmax would drop it.
            const double margin = 1.0 - z;
            loss += (margin > 0 || margin != margin) ? margin : 0.0;
        }
        reward_real += real;
        reward_generated += generated;
        accuracy += real > generated ? 1 : 0;
        logp_real += policyReal[i];
        logp_generated += policyGenerated[i];
    }
    stats[0] = loss / B;
    stats[1] = reward_real / B;
    stats[2] = reward_generated / B;
    stats[3] = accuracy / B;
    stats[4] = (reward_real - reward_generated) / B;
    stats[5] = logp_real / B;
    stats[6] = logp_generated / B;
}

// One thread per pair. scale_beta is lossScale * beta rounded to float, as Java's
// `lossScale * beta * dLossDz / b` multiplies the two floats before widening.
__global__ void __launch_bounds__(BROADCAST_BLOCK)
spin_loss_backward_kernel(float* dPolicyReal, float* dPolicyGenerated, const float* policyReal,
                          const float* policyGenerated, const float* opponentReal, const float* opponentGenerated,
                          int B, float beta, int type, float scale_beta) {
    const int i = blockIdx.x * BROADCAST_BLOCK + threadIdx.x;
    if (i >= B) return;
    const double policy = static_cast<double>(policyReal[i]) - policyGenerated[i];
    const double opponent = static_cast<double>(opponentReal[i]) - opponentGenerated[i];
    const double z = __dmul_rn(static_cast<double>(beta), policy - opponent);
    double d_loss_d_z;
    if (type == SPIN_LOSS_SIGMOID) {
        d_loss_d_z = -1.0 / (1.0 + exp(z));
    } else {
        d_loss_d_z = 1 - z > 0 ? -1.0 : 0.0;
    }
    const float grad = static_cast<float>(__dmul_rn(static_cast<double>(scale_beta), d_loss_d_z) / B);
    dPolicyReal[i] = grad;
    dPolicyGenerated[i] = -grad;
}

int check_type(const char* call, int type) {
    if (type == SPIN_LOSS_SIGMOID || type == SPIN_LOSS_HINGE) return SPIN_OK;
    return spin::fail(SPIN_ERR_INVALID_ARG, "%s: loss type %d is neither SPIN_LOSS_SIGMOID (0) nor SPIN_LOSS_HINGE (1)",
                      call, type);
}

}  // namespace

extern "C" {

int spin_row_sum_forward(spin_stream_t stream, float* out, const float* in, int B, int T) {
    if (B < 0 || T < 0) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_row_sum_forward: need B, T >= 0, got B=%d T=%d", B, T);
    if (B == 0) return SPIN_OK;
    if (!out || (T > 0 && !in)) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_row_sum_forward: NULL tensor pointer");
    const int blocks = (B + ROW_SUM_ROWS - 1) / ROW_SUM_ROWS;
    SPIN_LAUNCH(row_sum_forward_kernel, blocks, ROW_SUM_BLOCK, 0, spin::to_cuda(stream), out, in, B, T);
    SPIN_LAUNCH_CHECK(row_sum_forward_kernel);
    return SPIN_OK;
}

int spin_row_sum_backward(spin_stream_t stream, float* dIn, const float* dOut, int B, int T) {
    if (B < 0 || T < 0) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_row_sum_backward: need B, T >= 0, got B=%d T=%d", B, T);
    const size_t count = static_cast<size_t>(B) * T;
    if (count == 0) return SPIN_OK;
    if (!dIn || !dOut) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_row_sum_backward: NULL tensor pointer");
    // One thread per element; the grid's x dimension (2^31 - 1 blocks) covers 5.5e11 elements.
    const size_t blocks = (count + BROADCAST_BLOCK - 1) / BROADCAST_BLOCK;
    if (blocks > 0x7fffffffu) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_row_sum_backward: B=%d T=%d is too many elements", B, T);
    }
    SPIN_LAUNCH(row_sum_backward_kernel, static_cast<unsigned int>(blocks), BROADCAST_BLOCK, 0, spin::to_cuda(stream),
                dIn, dOut, count, T);
    SPIN_LAUNCH_CHECK(row_sum_backward_kernel);
    return SPIN_OK;
}

int spin_spin_loss_forward(spin_stream_t stream, double* stats, const float* policyReal, const float* policyGenerated,
                           const float* opponentReal, const float* opponentGenerated, int B, float beta, int type) {
    if (B < 0) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_spin_loss_forward: need B >= 0, got %d", B);
    if (int status = check_type("spin_spin_loss_forward", type)) return status;
    if (B == 0) return SPIN_OK;
    if (!stats || !policyReal || !policyGenerated || !opponentReal || !opponentGenerated) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_spin_loss_forward: NULL tensor pointer");
    }
    SPIN_LAUNCH(spin_loss_forward_kernel, 1, 1, 0, spin::to_cuda(stream), stats, policyReal, policyGenerated,
                opponentReal, opponentGenerated, B, beta, type);
    SPIN_LAUNCH_CHECK(spin_loss_forward_kernel);
    return SPIN_OK;
}

int spin_spin_loss_backward(spin_stream_t stream, float* dPolicyReal, float* dPolicyGenerated, const float* policyReal,
                            const float* policyGenerated, const float* opponentReal, const float* opponentGenerated,
                            int B, float beta, int type, float lossScale) {
    if (B < 0) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_spin_loss_backward: need B >= 0, got %d", B);
    if (int status = check_type("spin_spin_loss_backward", type)) return status;
    if (B == 0) return SPIN_OK;
    if (!dPolicyReal || !dPolicyGenerated || !policyReal || !policyGenerated || !opponentReal || !opponentGenerated) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_spin_loss_backward: NULL tensor pointer");
    }
    const float scale_beta = lossScale * beta;
    const int blocks = (B + BROADCAST_BLOCK - 1) / BROADCAST_BLOCK;
    SPIN_LAUNCH(spin_loss_backward_kernel, blocks, BROADCAST_BLOCK, 0, spin::to_cuda(stream), dPolicyReal,
                dPolicyGenerated, policyReal, policyGenerated, opponentReal, opponentGenerated, B, beta, type,
                scale_beta);
    SPIN_LAUNCH_CHECK(spin_loss_backward_kernel);
    return SPIN_OK;
}

}  // extern "C"
