// spin_logprob_forward/backward (kernels/logprob.cu) against an fp64 host reference: valid,
// ignored (-100) and out-of-range labels, rows shorter and longer than the block, a 32000-wide
// vocabulary row, logits large enough to overflow exp without the max shift, fp32 dLogits aliasing
// logits, and bf16 dLogits (from fp32 logits) per element and by DESIGN section 4's 3x rule.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

constexpr int32_t IGNORE = -100;

// Mostly valid labels (including 0 and V - 1), every fifth row ignored, and out-of-range labels
// of both signs on rows 3 and 10 (when the batch has them).
std::vector<int32_t> make_labels(int N, int V) {
    std::vector<int32_t> labels(N);
    for (int n = 0; n < N; ++n) {
        if (n % 5 == 1) {
            labels[n] = IGNORE;
        } else if (n == 3) {
            labels[n] = V;
        } else if (n == 10) {
            labels[n] = -1;
        } else if (n == 0) {
            labels[n] = V - 1;
        } else if (n == 2) {
            labels[n] = 0;
        } else {
            labels[n] = static_cast<int32_t>((static_cast<uint32_t>(n) * 2654435761u) % static_cast<uint32_t>(V));
        }
    }
    return labels;
}

bool valid(int32_t label, int V) { return label >= 0 && label < V; }

bool is_positive_zero(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    return bits == 0;
}

// dtype: of dLogits; aliased (fp32 only) passes dLogits == logits.
void check_logprob(int dtype, int N, int V, float scale, float offset, bool aliased) {
    std::vector<float> logits = random_floats(static_cast<size_t>(N) * V, scale);
    for (float& x : logits) x += offset;
    const std::vector<int32_t> labels = make_labels(N, V);
    const std::vector<float> d_logp = random_floats(N, 2.0f);

    // Reference: lse in double; the backward is fed the float lse it would get from a forward, and
    // its reference uses that same float lse so that only the kernel's own error is measured.
    std::vector<double> lse_ref(N), logp_ref, d_label_ref, d_other_ref;
    std::vector<float> lse_f(N);
    for (int n = 0; n < N; ++n) {
        const float* x = &logits[static_cast<size_t>(n) * V];
        double max = -INFINITY;
        for (int v = 0; v < V; ++v) max = std::fmax(max, x[v]);
        double sum = 0;
        for (int v = 0; v < V; ++v) sum += std::exp(x[v] - max);
        lse_ref[n] = max + std::log(sum);
        lse_f[n] = static_cast<float>(lse_ref[n]);
        if (valid(labels[n], V)) {
            logp_ref.push_back(x[labels[n]] - lse_ref[n]);
            for (int v = 0; v < V; ++v) {
                const double softmax = std::exp(x[v] - static_cast<double>(lse_f[n]));
                if (v == labels[n]) {
                    d_label_ref.push_back(d_logp[n] * (1.0 - softmax));
                } else {
                    d_other_ref.push_back(-d_logp[n] * softmax);
                }
            }
        }
    }

    float* logits_d = device_copy(logits);
    int32_t* labels_d = device_copy(labels);
    float* d_logp_d = device_copy(d_logp);
    float* lse_in_d = device_copy(lse_f);
    float* logp_d = device_poisoned<float>(N);
    float* lse_d = device_poisoned<float>(N);
    void* d_logits_d = aliased ? logits_d : device_poisoned_typed(logits.size(), dtype);

    must(spin_logprob_forward(nullptr, logp_d, lse_d, logits_d, labels_d, N, V), "spin_logprob_forward");
    const std::vector<float> logp = host_copy(logp_d, N);
    const std::vector<float> lse = host_copy(lse_d, N);
    must(spin_logprob_backward(nullptr, dtype, d_logits_d, d_logp_d, logits_d, labels_d, lse_in_d, N, V),
         "spin_logprob_backward");
    const std::vector<float> d_logits = host_typed(d_logits_d, logits.size(), dtype);

    // Valid rows against the reference; ignored rows exactly +0 (logp and every gradient);
    // out-of-range rows NaN (logp and every gradient). lse is saved for every row.
    std::vector<float> logp_valid, d_label, d_other;
    size_t wrong_rows = 0;
    for (int n = 0; n < N; ++n) {
        const float* row = &d_logits[static_cast<size_t>(n) * V];
        if (valid(labels[n], V)) {
            logp_valid.push_back(logp[n]);
            for (int v = 0; v < V; ++v) (v == labels[n] ? d_label : d_other).push_back(row[v]);
            continue;
        }
        const bool ignored = labels[n] == IGNORE;
        bool ok = ignored ? is_positive_zero(logp[n]) : std::isnan(logp[n]);
        for (int v = 0; v < V; ++v) ok = ok && (ignored ? is_positive_zero(row[v]) : std::isnan(row[v]));
        if (!ok) ++wrong_rows;
    }
    // fp32 bounds: lse and logp within a few ulps of lse; the softmax terms relative to their own
    // size (exp of a float difference of up to ~50), the label's g * (1 - p) absolutely, since it
    // cancels. A bf16 gradient adds its one rounding; its L2 error over the valid rows is held to
    // 3x that of rounding the exact gradient.
    const double rtol = 1e-5 + rounding_rtol(dtype);
    const double lse_ratio = worst_ratio(lse_ref, lse, 1e-6, 1e-6);
    const double logp_ratio = logp_ref.empty() ? 0 : worst_ratio(logp_ref, logp_valid, 2e-5, 1e-6);
    const double other_ratio = d_other_ref.empty() ? 0 : worst_ratio(d_other_ref, d_other, 1e-30, rtol);
    const double label_ratio = d_label_ref.empty() ? 0 : worst_ratio(d_label_ref, d_label, 1e-6, rtol);
    std::vector<double> d_ref = d_label_ref;
    d_ref.insert(d_ref.end(), d_other_ref.begin(), d_other_ref.end());
    std::vector<float> d_valid = d_label;
    d_valid.insert(d_valid.end(), d_other.begin(), d_other.end());
    // Never on zeros (V = 1: softmax is 1 and every gradient exactly 0, which the ratios check).
    double d_norm = 0;
    for (double d : d_ref) d_norm += d * d;
    const double d_error = d_norm == 0 ? 0 : relative_error(d_ref, d_valid);
    const bool l2_ok = d_norm == 0 || within_dtype_tolerance(d_error, d_ref, dtype, 1e-5, 3);
    report(lse_ratio <= 1 && logp_ratio <= 1 && other_ratio <= 1 && label_ratio <= 1 && l2_ok && wrong_rows == 0,
           "spin_logprob_forward/backward N=%d V=%d logits %g+-%g, %s dLogits%s: worst ratios lse %.2f logp %.2f "
           "dLogits %.2f (at labels %.2f), dLogits relative error %.1e, %zu wrong ignored/out-of-range rows",
           N, V, offset, scale, dtype_name(dtype), aliased ? " aliasing logits" : "", lse_ratio, logp_ratio,
           other_ratio, label_ratio, d_error, wrong_rows);
    for (void* p : {static_cast<void*>(logits_d), static_cast<void*>(labels_d), static_cast<void*>(d_logp_d),
                    static_cast<void*>(lse_in_d), static_cast<void*>(logp_d), static_cast<void*>(lse_d)}) {
        cudaFree(p);
    }
    if (!aliased) cudaFree(d_logits_d);
}

void check_logprob_arguments() {
    float* f = device_poisoned<float>(4);
    int32_t* labels = device_poisoned<int32_t>(4);
    float* logits = device_poisoned<float>(8);
    const int f32 = SPIN_DTYPE_F32, bf16 = SPIN_DTYPE_BF16;
    const bool ok = spin_logprob_forward(nullptr, nullptr, f, f, labels, 1, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_logprob_forward(nullptr, f, f, f, labels, 1, 0) == SPIN_ERR_INVALID_ARG &&
                    spin_logprob_forward(nullptr, f, f, f, labels, -1, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_logprob_backward(nullptr, f32, f, f, f, nullptr, f, 1, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_logprob_backward(nullptr, 2, f, f, f, labels, f, 1, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_logprob_forward(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 4) == SPIN_OK &&
                    spin_logprob_backward(nullptr, bf16, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 4) == SPIN_OK;
    // bf16 dLogits [2,4] may not share a byte with the fp32 logits: the same address, the bf16 rows
    // ending just past the logits' start, or starting in their last element.
    const bool overlap_refused =
        spin_logprob_backward(nullptr, bf16, logits, f, logits, labels, f, 2, 4) == SPIN_ERR_INVALID_ARG &&
        spin_logprob_backward(nullptr, bf16, reinterpret_cast<char*>(logits) - 14, f, logits, labels, f, 2, 4) ==
            SPIN_ERR_INVALID_ARG &&
        spin_logprob_backward(nullptr, bf16, reinterpret_cast<char*>(logits) + 28, f, logits, labels, f, 2, 4) ==
            SPIN_ERR_INVALID_ARG;
    report(ok && overlap_refused,
           "spin_logprob_forward/backward reject NULL tensors, bad sizes, unknown dtypes and bf16 dLogits overlapping "
           "the logits; accept N=0");
    cudaFree(logits);
    cudaFree(f);
    cudaFree(labels);
}

}  // namespace

// V = 1 and 7 (most threads without a column), 255/257 around the block, a 32000-wide row alone,
// a batch with every label kind, logits around 100 (exp overflows fp32 without the max shift).
SPIN_KERNEL_CHECKS(logprob) {
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) {
        check_logprob(dtype, 1, 1, 1.0f, 0.0f, false);
        check_logprob(dtype, 3, 7, 4.0f, 0.0f, false);
        check_logprob(dtype, 12, 255, 4.0f, 0.0f, false);
        check_logprob(dtype, 12, 257, 4.0f, 0.0f, false);
        check_logprob(dtype, 1, 32000, 8.0f, 0.0f, false);
        check_logprob(dtype, 11, 4099, 20.0f, 100.0f, false);
    }
    check_logprob(SPIN_DTYPE_F32, 12, 257, 4.0f, 0.0f, true);
    check_logprob(SPIN_DTYPE_F32, 1, 32000, 8.0f, 0.0f, true);
    check_logprob_arguments();
}
