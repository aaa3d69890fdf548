// spin_rmsnorm_forward/backward (kernels/rmsnorm.cu) against an fp64 host reference; the fused
// spin_add_rmsnorm_forward bit for bit against its unfused twin, spin_add then spin_rmsnorm_forward.
#include <cmath>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

void check_rmsnorm(int dtype, int N, int C) {
    const float eps = 1e-5f;
    const std::vector<float> in = representable(random_floats(static_cast<size_t>(N) * C, 3.0f), dtype);
    std::vector<float> weight = random_floats(C, 0.2f);
    for (float& w : weight) w += 1.0f;
    weight = representable(weight, dtype);
    const std::vector<float> d_out = representable(random_floats(static_cast<size_t>(N) * C), dtype);
    const std::vector<float> d_weight_before = random_floats(C);

    std::vector<double> out_ref(in.size()), rstd_ref(N), d_in_ref(in.size()), d_weight_ref(C);
    std::vector<float> rstd_f(N);
    for (int c = 0; c < C; ++c) d_weight_ref[c] = d_weight_before[c];
    for (int n = 0; n < N; ++n) {
        double squares = 0;
        for (int c = 0; c < C; ++c) squares += static_cast<double>(in[n * C + c]) * in[n * C + c];
        rstd_ref[n] = 1.0 / std::sqrt(squares / C + eps);
        rstd_f[n] = static_cast<float>(rstd_ref[n]);
        double dot = 0;
        for (int c = 0; c < C; ++c) {
            out_ref[n * C + c] = in[n * C + c] * rstd_ref[n] * weight[c];
            dot += static_cast<double>(d_out[n * C + c]) * weight[c] * in[n * C + c];
        }
        const double r = rstd_f[n];
        for (int c = 0; c < C; ++c) {
            const size_t i = static_cast<size_t>(n) * C + c;
            d_in_ref[i] = r * weight[c] * d_out[i] - r * r * r * in[i] * dot / C;
            d_weight_ref[c] += static_cast<double>(d_out[i]) * in[i] * r;
        }
    }
    void* in_d = device_typed(in, dtype);
    void* weight_d = device_typed(weight, dtype);
    void* d_out_d = device_typed(d_out, dtype);
    float* rstd_in_d = device_copy(rstd_f);
    float* d_weight_d = device_copy(d_weight_before);
    void* out_d = device_poisoned_typed(in.size(), dtype);
    float* rstd_d = device_poisoned<float>(N);
    void* d_in_d = device_poisoned_typed(in.size(), dtype);
    size_t scratch_bytes = 0;
    must(spin_rmsnorm_backward_scratch_bytes(N, C, &scratch_bytes), "spin_rmsnorm_backward_scratch_bytes");
    float* scratch_d = device_poisoned<float>(scratch_bytes / sizeof(float));

    must(spin_rmsnorm_forward(nullptr, dtype, out_d, rstd_d, in_d, weight_d, N, C, eps), "spin_rmsnorm_forward");
    must(spin_rmsnorm_backward(nullptr, dtype, d_in_d, d_weight_d, scratch_d, d_out_d, in_d, weight_d, rstd_in_d, N, C),
         "spin_rmsnorm_backward");
    const double errors[4] = {relative_error(out_ref, host_typed(out_d, in.size(), dtype)),
                              relative_error(rstd_ref, host_copy(rstd_d, N)),
                              relative_error(d_in_ref, host_typed(d_in_d, in.size(), dtype)),
                              relative_error(d_weight_ref, host_copy(d_weight_d, C))};
    const bool ok = within_dtype_tolerance(errors[0], out_ref, dtype, 1e-5, 2) && errors[1] < 1e-5 &&
                    within_dtype_tolerance(errors[2], d_in_ref, dtype, 1e-4, 3) && errors[3] < 1e-5;
    report(ok, "spin_rmsnorm_forward/backward %s N=%d C=%d: relative errors out %.1e rstd %.1e dIn %.1e dWeight %.1e",
           dtype_name(dtype), N, C, errors[0], errors[1], errors[2], errors[3]);
    for (void* p : {in_d, weight_d, d_out_d, static_cast<void*>(rstd_in_d), static_cast<void*>(d_weight_d), out_d,
                    static_cast<void*>(rstd_d), d_in_d, static_cast<void*>(scratch_d)}) {
        cudaFree(p);
    }
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

// Once into a separate sum and once in place (sum == a, as the residual stream is updated).
void check_add_rmsnorm(int dtype, int N, int C) {
    const float eps = 1e-5f;
    const size_t count = static_cast<size_t>(N) * C;
    const std::vector<float> a = representable(random_floats(count, 3.0f), dtype);
    const std::vector<float> b = representable(random_floats(count, 3.0f), dtype);
    const std::vector<float> weight = representable(random_floats(C, 1.0f), dtype);
    void* a_d = device_typed(a, dtype);
    void* b_d = device_typed(b, dtype);
    void* weight_d = device_typed(weight, dtype);
    void* sum_ref_d = device_poisoned_typed(count, dtype);
    void* out_ref_d = device_poisoned_typed(count, dtype);
    float* rstd_ref_d = device_poisoned<float>(N);
    must(spin_add(nullptr, dtype, sum_ref_d, a_d, b_d, count), "spin_add");
    must(spin_rmsnorm_forward(nullptr, dtype, out_ref_d, rstd_ref_d, sum_ref_d, weight_d, N, C, eps), "spin_rmsnorm_forward");
    const std::vector<float> sum_ref = host_typed(sum_ref_d, count, dtype), out_ref = host_typed(out_ref_d, count, dtype),
                             rstd_ref = host_copy(rstd_ref_d, N);

    void* sum_d = device_poisoned_typed(count, dtype);
    void* out_d = device_poisoned_typed(count, dtype);
    float* rstd_d = device_poisoned<float>(N);
    must(spin_add_rmsnorm_forward(nullptr, dtype, sum_d, out_d, rstd_d, a_d, b_d, weight_d, N, C, eps),
         "spin_add_rmsnorm_forward");
    const bool separate = same_bits(sum_ref, host_typed(sum_d, count, dtype)) &&
                          same_bits(out_ref, host_typed(out_d, count, dtype)) && same_bits(rstd_ref, host_copy(rstd_d, N));
    void* out2_d = device_poisoned_typed(count, dtype);
    must(spin_add_rmsnorm_forward(nullptr, dtype, a_d, out2_d, rstd_d, a_d, b_d, weight_d, N, C, eps),
         "spin_add_rmsnorm_forward in place");
    const bool in_place = same_bits(sum_ref, host_typed(a_d, count, dtype)) &&
                          same_bits(out_ref, host_typed(out2_d, count, dtype)) && same_bits(rstd_ref, host_copy(rstd_d, N));
    report(separate && in_place, "spin_add_rmsnorm_forward %s N=%d C=%d: bits of spin_add + spin_rmsnorm_forward "
           "(sum separate %s, sum == a %s)", dtype_name(dtype), N, C, separate ? "same" : "DIFFER", in_place ? "same" : "DIFFER");
    for (void* p : {a_d, b_d, weight_d, sum_ref_d, out_ref_d, static_cast<void*>(rstd_ref_d), sum_d, out_d,
                    static_cast<void*>(rstd_d), out2_d}) {
        cudaFree(p);
    }
}

}  // namespace

// Edge shapes: a single column, rows not a multiple of the 8 per backward block, columns not a
// multiple of the 256 threads, and a row too long for the default 48 KiB of shared memory.
SPIN_KERNEL_CHECKS(rmsnorm) {
    const int shapes[][2] = {{1, 3}, {7, 5}, {9, 300}, {17, 1023}, {3, 12345}};
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) {
        for (const auto& shape : shapes) check_rmsnorm(dtype, shape[0], shape[1]);
        for (const auto& shape : shapes) check_add_rmsnorm(dtype, shape[0], shape[1]);
    }
    void* x_d = device_poisoned<float>(4);
    float* r_d = device_poisoned<float>(1);
    report(spin_add_rmsnorm_forward(nullptr, SPIN_DTYPE_F32, x_d, x_d, r_d, x_d, x_d, x_d, 1, 4, 1e-5f) ==
               SPIN_ERR_INVALID_ARG,
           "spin_add_rmsnorm_forward refuses out aliasing sum");
    cudaFree(x_d);
    cudaFree(r_d);
}
