// spin_swiglu_forward/backward (kernels/swiglu.cu) against an fp64 host reference, per element.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

void check_swiglu(size_t count) {
    std::vector<float> gate = random_floats(count, 8.0f);
    // Saturated sigmoids (exp(-x) overflows below -88), the zero of 1 + x (1 - s) near -1.2785,
    // and tiny gates, where a careless formula loses everything.
    const float special[] = {-100.0f, -88.5f, -20.0f, -1.2785f, 0.0f, 1e-3f, 20.0f, 50.0f};
    for (size_t i = 0; i < std::min(count, std::size(special)); ++i) gate[i] = special[i];
    const std::vector<float> up = random_floats(count, 2.0f);
    const std::vector<float> d_out = random_floats(count);

    std::vector<double> out_ref(count), d_gate_ref(count), d_up_ref(count);
    for (size_t i = 0; i < count; ++i) {
        const double x = gate[i], s = 1.0 / (1.0 + std::exp(-x));
        out_ref[i] = x * s * up[i];
        d_up_ref[i] = d_out[i] * x * s;
        d_gate_ref[i] = d_out[i] * up[i] * s * (1.0 + x * (1.0 - s));
    }
    float* gate_d = device_copy(gate);
    float* up_d = device_copy(up);
    float* d_out_d = device_copy(d_out);
    float* out_d = device_poisoned<float>(count);
    float* d_gate_d = device_poisoned<float>(count);
    float* d_up_d = device_poisoned<float>(count);
    must(spin_swiglu_forward(nullptr, out_d, gate_d, up_d, count), "spin_swiglu_forward");
    must(spin_swiglu_backward(nullptr, d_gate_d, d_up_d, d_out_d, gate_d, up_d, count), "spin_swiglu_backward");
    // expf is within 2 ulp and each formula has a handful of roundings: 1e-5 relative is ample, and
    // the absolute part only covers results that are zero up to underflow.
    const double ratios[3] = {worst_ratio(out_ref, host_copy(out_d, count), 1e-6, 1e-5),
                              worst_ratio(d_gate_ref, host_copy(d_gate_d, count), 1e-6, 1e-5),
                              worst_ratio(d_up_ref, host_copy(d_up_d, count), 1e-6, 1e-5)};
    report(ratios[0] <= 1 && ratios[1] <= 1 && ratios[2] <= 1,
           "spin_swiglu_forward/backward count=%zu: worst error / tolerance out %.2f dGate %.2f dUp %.2f", count,
           ratios[0], ratios[1], ratios[2]);
    for (float* p : {gate_d, up_d, d_out_d, out_d, d_gate_d, d_up_d}) cudaFree(p);
}

}  // namespace

SPIN_KERNEL_CHECKS(swiglu) {
    for (size_t count : {size_t{1}, size_t{8}, size_t{255}, size_t{257}, size_t{4099}}) check_swiglu(count);
    float* x_d = device_poisoned<float>(1);
    const bool arguments = spin_swiglu_forward(nullptr, x_d, nullptr, x_d, 1) == SPIN_ERR_INVALID_ARG &&
                           spin_swiglu_backward(nullptr, x_d, nullptr, x_d, x_d, x_d, 1) == SPIN_ERR_INVALID_ARG &&
                           spin_swiglu_forward(nullptr, nullptr, nullptr, nullptr, 0) == SPIN_OK &&
                           spin_swiglu_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0) == SPIN_OK;
    report(arguments, "spin_swiglu_* reject NULL tensors and do nothing for count 0");
    cudaFree(x_d);
}
