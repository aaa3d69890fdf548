// spin_sum, spin_clip_scale and spin_accumulate_weighted (kernels/reduce.cu): sums and sums of
// squares against a long-double host sum, bit-identical reruns, the divisor and the empty sum,
// NaN and infinity propagation, the clipping factor bit for bit against Backend.clipGradNorm's
// double arithmetic, and weighted running sums bit for bit against Java's.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// One spin_sum call on a device copy of `in`, into a poisoned output and poisoned scratch.
double device_sum(const float* in_d, size_t count, int squares, double divisor = 1.0) {
    size_t scratch_bytes = 0;
    must(spin_sum_scratch_bytes(count, &scratch_bytes), "spin_sum_scratch_bytes");
    double* scratch_d = device_poisoned<double>(scratch_bytes / sizeof(double));
    double* out_d = device_poisoned<double>(1);
    must(spin_sum(nullptr, out_d, scratch_d, in_d, count, squares, divisor), "spin_sum");
    const double out = host_copy(out_d, 1)[0];
    cudaFree(scratch_d);
    cudaFree(out_d);
    return out;
}

// `kinds` 1: squares only (the large count, to keep the emulated run short); 2: values and squares.
void check_sum(size_t count, int kinds = 2) {
    const std::vector<float> in = random_floats(count, 10.0f);
    float* in_d = device_copy(in);
    for (int squares = 2 - kinds; squares <= 1; ++squares) {
        long double reference = 0;
        double magnitude = 0;  // sum of |terms|: the scale of any summation order's rounding error
        for (float x : in) {
            const double term = squares ? static_cast<double>(x) * x : x;
            reference += term;
            magnitude += std::fabs(term);
        }
        const double first = device_sum(in_d, count, squares);
        const double second = device_sum(in_d, count, squares);
        // A thread adds a few thousand terms at most here, then trees of 256: far inside 1e-13.
        const double ratio = std::fabs(first - static_cast<double>(reference)) / (1e-13 * magnitude);
        report(ratio <= 1 && same_bits(first, second),
               "spin_sum %s count=%zu: %.17g vs host %.17Lg, ratio %.2f to 1e-13 * sum|terms|, rerun %s", 
               squares ? "squares" : "values", count, first, reference, ratio,
               same_bits(first, second) ? "bit-identical" : "DIFFERS");
    }
    cudaFree(in_d);
}

// The divisor divides the finished sum once: the same bits as the plain sum divided on the host,
// a negative divisor the negated quotient (SFT's loss is the token log-probs' sum over -tokens).
// An empty input gives 0 / divisor without scratch or input.
void check_sum_divisor(size_t count) {
    const std::vector<float> in = random_floats(count, 3.0f);
    float* in_d = device_copy(in);
    const double plain = device_sum(in_d, count, 0);
    bool ok = true;
    for (double divisor : {3.0, 1e3 * 4096, -37.0}) {
        const double expected = plain / divisor, got = device_sum(in_d, count, 0, divisor);
        ok = ok && same_bits(got, expected);
    }
    cudaFree(in_d);
    double* out_d = device_poisoned<double>(1);
    must(spin_sum(nullptr, out_d, nullptr, nullptr, 0, 1, -5.0), "spin_sum");
    const double empty = host_copy(out_d, 1)[0];
    cudaFree(out_d);
    ok = ok && same_bits(empty, 0.0 / -5.0);
    report(ok, "spin_sum count=%zu: divided by 3, 4096000 and -37 as the host divides the plain sum; empty sum / -5 is -0",
           count);
}

// A NaN or an infinity anywhere makes the sum non-finite, as Backend.allFinite relies on.
void check_sum_non_finite(size_t count, size_t at) {
    std::vector<float> in = random_floats(count);
    float* in_d = nullptr;
    bool ok = true;
    in[at] = NAN;
    in_d = device_copy(in);
    ok = ok && std::isnan(device_sum(in_d, count, 0)) && std::isnan(device_sum(in_d, count, 1));
    cudaFree(in_d);
    in[at] = INFINITY;
    in_d = device_copy(in);
    const double inf_sum = device_sum(in_d, count, 0), inf_squares = device_sum(in_d, count, 1);
    ok = ok && inf_sum == INFINITY && inf_squares == INFINITY;
    cudaFree(in_d);
    in[count - 1 - at] = -INFINITY;
    in_d = device_copy(in);
    ok = ok && std::isnan(device_sum(in_d, count, 0)) && device_sum(in_d, count, 1) == INFINITY;
    cudaFree(in_d);
    report(ok, "spin_sum count=%zu: a NaN, an inf, and +inf with -inf at %zu give NaN / inf / NaN (squares: inf)",
           count, at);
}

void check_sum_arguments() {
    float* f = device_poisoned<float>(4);
    double* d = device_poisoned<double>(4);
    size_t bytes = 1;
    const bool ok = spin_sum(nullptr, d, d, f, 4, 2, 1.0) == SPIN_ERR_INVALID_ARG &&
                    spin_sum(nullptr, d, nullptr, f, 4, 0, 1.0) == SPIN_ERR_INVALID_ARG &&
                    spin_sum(nullptr, nullptr, d, f, 4, 1, 1.0) == SPIN_ERR_INVALID_ARG &&
                    spin_sum(nullptr, nullptr, nullptr, nullptr, 0, 0, 1.0) == SPIN_ERR_INVALID_ARG &&
                    spin_sum_scratch_bytes(4, nullptr) == SPIN_ERR_INVALID_ARG &&
                    spin_sum_scratch_bytes(0, &bytes) == SPIN_OK && bytes == 0 &&
                    spin_clip_scale(nullptr, nullptr, nullptr, d, 1.0f) == SPIN_ERR_INVALID_ARG &&
                    spin_clip_scale(nullptr, f, d, nullptr, 1.0f) == SPIN_ERR_INVALID_ARG &&
                    spin_clip_scale(nullptr, f, d, d, 0.0f) == SPIN_ERR_INVALID_ARG &&
                    spin_clip_scale(nullptr, f, d, d, NAN) == SPIN_ERR_INVALID_ARG &&
                    spin_accumulate_weighted(nullptr, nullptr, d, 1.0, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_accumulate_weighted(nullptr, d, nullptr, 1.0, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_accumulate_weighted(nullptr, nullptr, nullptr, 1.0, 0) == SPIN_OK;
    report(ok, "spin_sum / spin_clip_scale / spin_accumulate_weighted reject NULL tensors, bad flags and maxNorm <= 0 "
               "(with a scale), accept count 0");
    cudaFree(f);
    cudaFree(d);
}

// Backend.clipFactor: coefficient = maxNorm / (norm + 1e-6) in double (maxNorm too), applied only below 1.
void check_clip_scale(double sum_of_squares, double max_norm, bool with_norm) {
    const double norm_ref = std::sqrt(sum_of_squares);
    const double coefficient = max_norm / (norm_ref + 1e-6);
    const float scale_ref = coefficient < 1 || std::isnan(coefficient) ? static_cast<float>(coefficient) : 1.0f;
    double* sum_d = device_copy(std::vector<double>{sum_of_squares});
    if (max_norm <= 0) {  // clipping off: the norm alone, no scale
        double* norm_d = device_poisoned<double>(1);
        must(spin_clip_scale(nullptr, nullptr, norm_d, sum_d, max_norm), "spin_clip_scale");
        const double norm = host_copy(norm_d, 1)[0];
        report(same_bits(norm, norm_ref), "spin_clip_scale sumOfSquares=%g maxNorm=%g (scale NULL): norm %.17g (expected %.17g)",
               sum_of_squares, max_norm, norm, norm_ref);
        cudaFree(sum_d);
        cudaFree(norm_d);
        return;
    }
    float* scale_d = device_poisoned<float>(1);
    double* norm_d = with_norm ? device_poisoned<double>(1) : nullptr;
    must(spin_clip_scale(nullptr, scale_d, norm_d, sum_d, max_norm), "spin_clip_scale");
    const float scale = host_copy(scale_d, 1)[0];
    const double norm = with_norm ? host_copy(norm_d, 1)[0] : norm_ref;
    const bool ok = (std::memcmp(&scale, &scale_ref, sizeof(float)) == 0 || (std::isnan(scale) && std::isnan(scale_ref))) &&
                    (same_bits(norm, norm_ref) || (std::isnan(norm) && std::isnan(norm_ref)));
    report(ok, "spin_clip_scale sumOfSquares=%g maxNorm=%g%s: scale %.9g (expected %.9g), norm %.17g (expected %.17g)",
           sum_of_squares, max_norm, with_norm ? "" : " (norm NULL)", scale, scale_ref, norm, norm_ref);
    cudaFree(sum_d);
    cudaFree(scale_d);
    if (norm_d) cudaFree(norm_d);
}

// Three rounds of sums += values * weight from -0 (the identity of IEEE addition, so a first
// product of -0 stays -0 as a first Java map entry would), against the same double arithmetic on
// the host; values with many significant bits, so a fused multiply-add would differ.
void check_accumulate_weighted(size_t count) {
    std::vector<double> sums(count, -0.0), values(count);
    double* sums_d = device_copy(sums);
    const double weights[] = {3.0, 0.1, 7.0 / 3.0};
    for (double weight : weights) {
        for (size_t i = 0; i < count; ++i) values[i] = i == 0 ? -0.0 : uniform() * 1e3 / 7.0;
        double* values_d = device_copy(values);
        must(spin_accumulate_weighted(nullptr, sums_d, values_d, weight, count), "spin_accumulate_weighted");
        cudaFree(values_d);
        for (size_t i = 0; i < count; ++i) {
            volatile double product = values[i] * weight;  // rounded on its own, as Java rounds it
            sums[i] = sums[i] + product;
        }
    }
    const std::vector<double> got = host_copy(sums_d, count);
    cudaFree(sums_d);
    bool ok = true;
    for (size_t i = 0; i < count; ++i) ok = ok && same_bits(got[i], sums[i]);
    report(ok, "spin_accumulate_weighted count=%zu: three weighted rounds bit-identical to the host's, -0 kept", count);
}

}  // namespace

SPIN_KERNEL_CHECKS(reduce) {
    // One element, within one block's stride, around it, around one block's 4096, many blocks, and
    // past the 1024-block cap (1024 * 4096 elements).
    for (size_t count : {size_t{1}, size_t{255}, size_t{257}, size_t{4097}, size_t{70001}, size_t{1000003}}) {
        check_sum(count);
    }
    check_sum(size_t{1024} * 4096 + 4099, 1);
    check_sum_divisor(4099);
    check_sum_non_finite(4099, 17);
    check_sum_non_finite(70001, 69000);
    check_sum_arguments();
    check_clip_scale(4.0, 1.0f, true);       // norm 2: clipped to ~0.5
    check_clip_scale(1.0, 1.0f, true);       // norm 1: 1 / (1 + 1e-6) < 1, still clipped
    check_clip_scale(0.25, 1.0f, true);      // under the limit: exactly 1
    check_clip_scale(0.0, 1.0f, false);      // zero gradients: 1, norm 0
    check_clip_scale(1e30, 0.5f, true);      // a huge norm: a tiny factor
    check_clip_scale(4.0, 0.3, true);        // a limit no float holds: divided in double, as Java does
    check_clip_scale(INFINITY, 1.0f, true);  // factor 0
    check_clip_scale(NAN, 1.0f, true);       // NaN stays visible
    check_clip_scale(4.0, 0.0f, true);       // clipping off: the norm only
    check_clip_scale(NAN, 0.0f, true);
    for (size_t count : {size_t{1}, size_t{9}, size_t{257}}) check_accumulate_weighted(count);
}
