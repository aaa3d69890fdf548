// spin_argmax_rows (kernels/sampling.cu) against a host scan with Sampler's rule: the first index
// of the largest value, 0 for a row of -inf, -1 for a row holding a NaN.
#include <cmath>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

void check_argmax(int S, int V) {
    std::vector<float> logits = random_floats(static_cast<size_t>(S) * V, 10.0f);
    // Row 0: the maximum twice (the first must win); row 1: all -inf; row 2: a NaN after the maximum.
    if (S > 0 && V > 3) {
        logits[V - 1] = 100.0f;
        logits[V / 2] = 100.0f;
    }
    if (S > 1) {
        for (int v = 0; v < V; ++v) logits[static_cast<size_t>(V) + v] = -INFINITY;
    }
    if (S > 2) logits[2 * static_cast<size_t>(V) + V - 1] = NAN;
    std::vector<int32_t> expected(S);
    for (int s = 0; s < S; ++s) {
        int best = 0;
        bool nan = false;
        for (int v = 0; v < V; ++v) {
            const float x = logits[static_cast<size_t>(s) * V + v];
            if (std::isnan(x)) nan = true;
            else if (x > logits[static_cast<size_t>(s) * V + best] || std::isnan(logits[static_cast<size_t>(s) * V + best])) best = v;
        }
        expected[s] = nan ? -1 : best;
    }
    float* logits_d = device_copy(logits);
    int32_t* out_d = device_poisoned<int32_t>(S);
    must(spin_argmax_rows(nullptr, out_d, logits_d, S, V), "spin_argmax_rows");
    const std::vector<int32_t> out = host_copy(out_d, S);
    int wrong = 0;
    for (int s = 0; s < S; ++s) wrong += out[s] != expected[s];
    report(wrong == 0, "spin_argmax_rows S=%d V=%d: %d rows wrong", S, V, wrong);
    cudaFree(logits_d);
    cudaFree(out_d);
}

}  // namespace

SPIN_KERNEL_CHECKS(sampling) {
    check_argmax(1, 1);
    check_argmax(3, 5);
    check_argmax(5, 257);
    check_argmax(4, 32000);
    report(spin_argmax_rows(nullptr, nullptr, nullptr, 2, 0) == SPIN_ERR_INVALID_ARG, "spin_argmax_rows rejects V=0");
    report(spin_argmax_rows(nullptr, nullptr, nullptr, 0, 4) == SPIN_OK, "spin_argmax_rows does nothing for S=0");
}
