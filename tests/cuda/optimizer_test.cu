// spin_rmsprop_step and spin_adamw_step (kernels/optimizer.cu) bit for bit against a host float
// reference written in OptimizerMath.java's operation order, with and without weight decay, the
// bf16 compute copy, and the fused gradient scale and zeroing (against the scaled gradient, and a
// gradient left exactly +0); a second step runs on the state the first left.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

// A product that the host compiler cannot fuse with the following add, as Java never does.
float mul(float a, float b) {
    volatile float product = a * b;
    return product;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

struct Mismatches {
    size_t param = 0, state = 0, state2 = 0, copy = 0, grad = 0;
    bool none() const { return param == 0 && state == 0 && state2 == 0 && copy == 0 && grad == 0; }
};

// Parameters around 1, gradients mixing ordinary values with zeros and subnormals (a
// flush-to-zero build would differ there), non-negative second moments.
struct Tensors {
    std::vector<float> param, grad, state, state2;
};

Tensors make_tensors(size_t count) {
    Tensors t;
    t.param = random_floats(count);
    t.grad = random_floats(count, 0.05f);
    t.state = random_floats(count, 0.01f);
    t.state2 = random_floats(count, 1e-3f);
    for (size_t i = 0; i < count; ++i) {
        t.param[i] += 1.0f;
        t.state2[i] = std::fabs(t.state2[i]);
        if (i % 7 == 3) t.grad[i] = 0.0f;
        if (i % 11 == 5) t.grad[i] = 3e-39f * (1 + static_cast<float>(i % 3));
    }
    return t;
}

// How a step takes its gradient: scaled by the device scalar (a clipping factor below 1) and/or
// zeroed once read; the reference scales the host gradient first, as a scale pass would.
struct GradientUse {
    bool scaled = false, zero = false;
    static constexpr float SCALE = 0.3721f;
};

void scale_reference(Tensors& t, const GradientUse& use) {
    if (!use.scaled) return;
    for (float& g : t.grad) g = mul(g, GradientUse::SCALE);
}

// After a step that zeroes, the gradient must be +0 everywhere; else it keeps the bits it had.
void count_grad_mismatches(Mismatches& wrong, const std::vector<float>& before, const float* grad_d, bool zero) {
    const std::vector<float> grad = host_copy(grad_d, before.size());
    for (size_t i = 0; i < before.size(); ++i) wrong.grad += !same_bits(grad[i], zero ? 0.0f : before[i]);
}

void rmsprop_reference(Tensors& t, float lr, float alpha, float eps, float weight_decay) {
    const float keep = 1.0f - alpha;
    for (size_t i = 0; i < t.param.size(); ++i) {
        const float p = t.param[i];
        const float g = weight_decay == 0.0f ? t.grad[i] : t.grad[i] + mul(weight_decay, p);
        const float s = mul(t.state[i], alpha) + mul(mul(keep, g), g);
        t.state[i] = s;
        t.param[i] = p + mul(-lr, g / (std::sqrt(s) + eps));
    }
}

void adamw_reference(Tensors& t, float lr, float beta1, float beta2, float eps, float weight_decay, float step_size,
                     float correction2_sqrt) {
    const float decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
    const float mix_in = 1.0f - beta1, mix_in_sq = 1.0f - beta2;
    for (size_t i = 0; i < t.param.size(); ++i) {
        const float p = weight_decay == 0.0f ? t.param[i] : mul(t.param[i], decay);
        const float g = t.grad[i];
        const float m = t.state[i] + mul(mix_in, g - t.state[i]);
        const float v = mul(t.state2[i], beta2) + mul(mul(mix_in_sq, g), g);
        t.state[i] = m;
        t.state2[i] = v;
        const float denominator = std::sqrt(v) / correction2_sqrt + eps;
        t.param[i] = p + mul(-step_size, m / denominator);
    }
}

void count_mismatches(Mismatches& wrong, const Tensors& expected, float* param_d, float* state_d, float* state2_d,
                      uint16_t* copy_d) {
    const size_t count = expected.param.size();
    const std::vector<float> param = host_copy(param_d, count);
    const std::vector<float> state = host_copy(state_d, count);
    for (size_t i = 0; i < count; ++i) {
        wrong.param += !same_bits(param[i], expected.param[i]);
        wrong.state += !same_bits(state[i], expected.state[i]);
    }
    if (state2_d) {
        const std::vector<float> state2 = host_copy(state2_d, count);
        for (size_t i = 0; i < count; ++i) wrong.state2 += !same_bits(state2[i], expected.state2[i]);
    }
    if (copy_d) {
        const std::vector<uint16_t> copy = host_copy(copy_d, count);
        for (size_t i = 0; i < count; ++i) wrong.copy += copy[i] != bf16_bits(expected.param[i]);
    }
}

// The step's gradient on the device: a fresh copy of the host one each step (a zeroing step
// leaves it +0), and the scale scalar when the step is scaled.
struct DeviceGradient {
    float* grad = nullptr;
    float* scale = nullptr;
    explicit DeviceGradient(const GradientUse& use, size_t count) {
        grad = device_poisoned<float>(count);
        if (use.scaled) scale = device_copy(std::vector<float>{GradientUse::SCALE});
    }
    void load(const std::vector<float>& host) {
        must(cudaMemcpy(grad, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    }
    ~DeviceGradient() {
        cudaFree(grad);
        if (scale) cudaFree(scale);
    }
};

const char* describe(const GradientUse& use) {
    return use.scaled ? (use.zero ? " scaled+zeroed" : " scaled") : (use.zero ? " zeroed" : "");
}

void check_rmsprop(size_t count, float weight_decay, bool with_copy, GradientUse use) {
    const float lr = 1e-2f, alpha = 0.99f, eps = 1e-8f;
    Tensors t = make_tensors(count);
    float* param_d = device_copy(t.param);
    DeviceGradient grad(use, count);
    float* square_avg_d = device_copy(t.state);
    uint16_t* copy_d = with_copy ? device_poisoned<uint16_t>(count) : nullptr;
    Mismatches wrong;
    for (int step = 1; step <= 2; ++step) {
        if (copy_d) must(cudaMemset(copy_d, 0xff, count * sizeof(uint16_t)), "cudaMemset");
        const std::vector<float> before = t.grad;
        grad.load(before);
        must(spin_rmsprop_step(nullptr, param_d, grad.grad, grad.scale, use.zero ? 1 : 0, square_avg_d, copy_d, count, lr,
                               alpha, eps, weight_decay),
             "spin_rmsprop_step");
        scale_reference(t, use);
        rmsprop_reference(t, lr, alpha, eps, weight_decay);
        t.grad = before;
        count_mismatches(wrong, t, param_d, square_avg_d, nullptr, copy_d);
        count_grad_mismatches(wrong, before, grad.grad, use.zero);
    }
    report(wrong.none(),
           "spin_rmsprop_step count=%zu weightDecay=%g%s%s, 2 steps: %zu params, %zu squareAvg, %zu bf16 copies, %zu "
           "grads differ from the host bits",
           count, weight_decay, with_copy ? " with bf16 copy" : "", describe(use), wrong.param, wrong.state, wrong.copy,
           wrong.grad);
    cudaFree(param_d);
    cudaFree(square_avg_d);
    if (copy_d) cudaFree(copy_d);
}

void check_adamw(size_t count, float weight_decay, bool with_copy, GradientUse use) {
    const float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    Tensors t = make_tensors(count);
    float* param_d = device_copy(t.param);
    DeviceGradient grad(use, count);
    float* exp_avg_d = device_copy(t.state);
    float* exp_avg_sq_d = device_copy(t.state2);
    uint16_t* copy_d = with_copy ? device_poisoned<uint16_t>(count) : nullptr;
    Mismatches wrong;
    for (long step = 1; step <= 2; ++step) {
        // As OptimizerMath: the bias corrections in double, rounded once.
        const float step_size = static_cast<float>(lr / (1.0 - std::pow(static_cast<double>(beta1), step)));
        const float correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(beta2), step)));
        if (copy_d) must(cudaMemset(copy_d, 0xff, count * sizeof(uint16_t)), "cudaMemset");
        const std::vector<float> before = t.grad;
        grad.load(before);
        must(spin_adamw_step(nullptr, param_d, grad.grad, grad.scale, use.zero ? 1 : 0, exp_avg_d, exp_avg_sq_d, copy_d,
                             count, lr, beta1, beta2, eps, weight_decay, step_size, correction2_sqrt),
             "spin_adamw_step");
        scale_reference(t, use);
        adamw_reference(t, lr, beta1, beta2, eps, weight_decay, step_size, correction2_sqrt);
        t.grad = before;
        count_mismatches(wrong, t, param_d, exp_avg_d, exp_avg_sq_d, copy_d);
        count_grad_mismatches(wrong, before, grad.grad, use.zero);
    }
    report(wrong.none(),
           "spin_adamw_step count=%zu weightDecay=%g%s%s, steps 1-2: %zu params, %zu expAvg, %zu expAvgSq, %zu bf16 "
           "copies, %zu grads differ from the host bits",
           count, weight_decay, with_copy ? " with bf16 copy" : "", describe(use), wrong.param, wrong.state, wrong.state2,
           wrong.copy, wrong.grad);
    for (void* p : {static_cast<void*>(param_d), static_cast<void*>(exp_avg_d), static_cast<void*>(exp_avg_sq_d)}) {
        cudaFree(p);
    }
    if (copy_d) cudaFree(copy_d);
}

void check_optimizer_arguments() {
    float* f = device_poisoned<float>(4);
    const bool ok =
        spin_rmsprop_step(nullptr, f, nullptr, nullptr, 0, f, nullptr, 4, 1e-2f, 0.99f, 1e-8f, 0.0f) ==
            SPIN_ERR_INVALID_ARG &&
        spin_adamw_step(nullptr, f, f, nullptr, 0, nullptr, f, nullptr, 4, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1e-2f,
                        0.03f) == SPIN_ERR_INVALID_ARG &&
        spin_rmsprop_step(nullptr, f, f, nullptr, 2, f, nullptr, 4, 1e-2f, 0.99f, 1e-8f, 0.0f) == SPIN_ERR_INVALID_ARG &&
        spin_adamw_step(nullptr, f, f, nullptr, -1, f, f, nullptr, 4, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1e-2f, 0.03f) ==
            SPIN_ERR_INVALID_ARG &&
        spin_rmsprop_step(nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr, 0, 1e-2f, 0.99f, 1e-8f, 0.0f) ==
            SPIN_OK &&
        spin_adamw_step(nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 0, 1e-3f, 0.9f, 0.999f, 1e-8f,
                        0.0f, 1e-2f, 0.03f) == SPIN_OK;
    report(ok, "spin_rmsprop_step / spin_adamw_step reject NULL tensors and zeroGrad not 0 or 1, accept count 0");
    cudaFree(f);
}

}  // namespace

SPIN_KERNEL_CHECKS(optimizer) {
    for (size_t count : {size_t{1}, size_t{255}, size_t{257}, size_t{4099}}) {
        for (float weight_decay : {0.0f, 0.01f}) {
            check_rmsprop(count, weight_decay, count != 255, GradientUse{});
            check_adamw(count, weight_decay, count != 255, GradientUse{});
        }
    }
    // The gradient's clipping scale and its zeroing, alone and together, with and without the copy.
    for (size_t count : {size_t{257}, size_t{4099}}) {
        for (const GradientUse use : {GradientUse{true, false}, GradientUse{false, true}, GradientUse{true, true}}) {
            check_rmsprop(count, 0.01f, count == 257, use);
            check_adamw(count, count == 257 ? 0.0f : 0.01f, count == 257, use);
        }
    }
    check_optimizer_arguments();
}
