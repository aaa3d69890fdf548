// Optimizer steps on fp32 tensors [count], element-wise and in place, in exactly the float
// operation order of java/spin/backend/cpu/OptimizerMath.java (torch's single-tensor float32
// implementations), so that a step gives the CPU's bits:
//   RMSprop: g = weightDecay == 0 ? grad : grad + weightDecay * p;
//            s = squareAvg * alpha + ((1 - alpha) * g) * g;  p = p + -lr * (g / (sqrt(s) + eps))
//   AdamW:   p = weightDecay == 0 ? p : p * float(1 - double(lr) * weightDecay);
//            m = m + (1 - beta1) * (grad - m);  v = v * beta2 + ((1 - beta2) * grad) * grad;
//            p = p + -stepSize * (m / (sqrt(v) / correction2Sqrt + eps))
// computeCopy (bf16 [count], optional) receives the new p rounded to nearest even. gradScale (fp32
// [1], optional: clipping's factor, read on the device) multiplies grad, rounded once, before the
// step uses it (no multiply without one, so an unscaled step keeps its bits): exactly the grad a
// spin_scale_by_device pass would leave. zeroGrad writes grad = +0 once the step has read it, as a
// fill after the step would. Either saves a pass over the gradient.
// Every operation is an explicitly rounded intrinsic: nvcc would otherwise fuse a product and the
// add after it into one FMA, which rounds once instead of twice and changes the bits; __fsqrt_rn
// and __fdiv_rn stay IEEE even under -use_fast_math.
#include <cstdint>

#include "bf16.cuh"
#include "internal.h"

namespace {

constexpr int OPTIMIZER_BLOCK = 256;

// The step's gradient element i: scaled when asked, zeroed in memory when asked.
__device__ __forceinline__ float take_grad(float* grad, const float* gradScale, int zeroGrad, size_t i) {
    const float g = grad[i];
    if (zeroGrad) grad[i] = 0.0f;
    return gradScale ? __fmul_rn(g, *gradScale) : g;
}

__global__ void __launch_bounds__(OPTIMIZER_BLOCK)
rmsprop_kernel(float* param, float* grad, const float* gradScale, int zeroGrad, float* squareAvg, uint16_t* computeCopy,
               size_t count, float lr, float alpha, float keep, float eps, float weightDecay) {
    const size_t i = static_cast<size_t>(blockIdx.x) * OPTIMIZER_BLOCK + threadIdx.x;
    if (i >= count) return;
    const float p = param[i];
    const float grad_i = take_grad(grad, gradScale, zeroGrad, i);
    const float g = weightDecay == 0.0f ? grad_i : __fadd_rn(grad_i, __fmul_rn(weightDecay, p));
    const float s = __fadd_rn(__fmul_rn(squareAvg[i], alpha), __fmul_rn(__fmul_rn(keep, g), g));
    squareAvg[i] = s;
    const float updated = __fadd_rn(p, __fmul_rn(-lr, __fdiv_rn(g, __fadd_rn(__fsqrt_rn(s), eps))));
    param[i] = updated;
    if (computeCopy) computeCopy[i] = f32_to_bf16_bits(updated);
}

__global__ void __launch_bounds__(OPTIMIZER_BLOCK)
adamw_kernel(float* param, float* grad, const float* gradScale, int zeroGrad, float* expAvg, float* expAvgSq,
             uint16_t* computeCopy, size_t count, float beta2, float eps, float weightDecay, float decay, float mixIn,
             float mixInSq, float stepSize, float correction2Sqrt) {
    const size_t i = static_cast<size_t>(blockIdx.x) * OPTIMIZER_BLOCK + threadIdx.x;
    if (i >= count) return;
    const float p = weightDecay == 0.0f ? param[i] : __fmul_rn(param[i], decay);
    const float g = take_grad(grad, gradScale, zeroGrad, i);
    const float m_old = expAvg[i];
    const float m = __fadd_rn(m_old, __fmul_rn(mixIn, __fsub_rn(g, m_old)));
    const float v = __fadd_rn(__fmul_rn(expAvgSq[i], beta2), __fmul_rn(__fmul_rn(mixInSq, g), g));
    expAvg[i] = m;
    expAvgSq[i] = v;
    const float denominator = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), correction2Sqrt), eps);
    const float updated = __fadd_rn(p, __fmul_rn(-stepSize, __fdiv_rn(m, denominator)));
    param[i] = updated;
    if (computeCopy) computeCopy[i] = f32_to_bf16_bits(updated);
}

// One thread per element; the grid's x dimension (2^31 - 1 blocks) covers 5.5e11 elements.
int optimizer_blocks(const char* call, size_t count, unsigned int* blocks) {
    const size_t needed = (count + OPTIMIZER_BLOCK - 1) / OPTIMIZER_BLOCK;
    if (needed > 0x7fffffffu) return spin::fail(SPIN_ERR_INVALID_ARG, "%s: %zu elements is too many", call, count);
    *blocks = static_cast<unsigned int>(needed);
    return SPIN_OK;
}

}  // namespace

extern "C" {

int spin_rmsprop_step(spin_stream_t stream, float* param, float* grad, const float* gradScale, int zeroGrad,
                      float* squareAvg, uint16_t* computeCopy, size_t count, float lr, float alpha, float eps,
                      float weightDecay) {
    if (zeroGrad != 0 && zeroGrad != 1) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rmsprop_step: zeroGrad must be 0 or 1, got %d", zeroGrad);
    }
    if (count == 0) return SPIN_OK;
    if (!param || !grad || !squareAvg) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_rmsprop_step: NULL tensor pointer");
    unsigned int blocks = 0;
    if (int status = optimizer_blocks("spin_rmsprop_step", count, &blocks)) return status;
    // Host float arithmetic, as OptimizerMath's `1f - alpha`.
    const float keep = 1.0f - alpha;
    SPIN_LAUNCH(rmsprop_kernel, blocks, OPTIMIZER_BLOCK, 0, spin::to_cuda(stream), param, grad, gradScale, zeroGrad,
                squareAvg, computeCopy, count, lr, alpha, keep, eps, weightDecay);
    SPIN_LAUNCH_CHECK(rmsprop_kernel);
    return SPIN_OK;
}

int spin_adamw_step(spin_stream_t stream, float* param, float* grad, const float* gradScale, int zeroGrad,
                    float* expAvg, float* expAvgSq, uint16_t* computeCopy, size_t count, float lr, float beta1,
                    float beta2, float eps, float weightDecay, float stepSize, float correction2Sqrt) {
    if (zeroGrad != 0 && zeroGrad != 1) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_adamw_step: zeroGrad must be 0 or 1, got %d", zeroGrad);
    }
    if (count == 0) return SPIN_OK;
    if (!param || !grad || !expAvg || !expAvgSq) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_adamw_step: NULL tensor pointer");
    }
    unsigned int blocks = 0;
    if (int status = optimizer_blocks("spin_adamw_step", count, &blocks)) return status;
    // As OptimizerMath: the decay factor in double, rounded once; the mixing weights in float.
    const double lr_decay = static_cast<double>(lr) * static_cast<double>(weightDecay);
    const float decay = static_cast<float>(1.0 - lr_decay);
    const float mix_in = 1.0f - beta1;
    const float mix_in_sq = 1.0f - beta2;
    SPIN_LAUNCH(adamw_kernel, blocks, OPTIMIZER_BLOCK, 0, spin::to_cuda(stream), param, grad, gradScale, zeroGrad,
                expAvg, expAvgSq, computeCopy, count, beta2, eps, weightDecay, decay, mix_in, mix_in_sq, stepSize,
                correction2Sqrt);
    SPIN_LAUNCH_CHECK(adamw_kernel);
    return SPIN_OK;
}

}  // extern "C"
