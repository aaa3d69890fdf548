// spin_attention_forward / backward / cached_forward (kernels/attention.cu) against an fp64 host
// reference written here from the semantics of Backend.attentionForward: the full softmax over
// each query's visible keys, and the backward by its analytic formulas
//   p_ij = softmax_j(s_ij), s_ij = q_i . k_j / sqrt(D), dp_ij = dOut_i . v_j, delta_i = sum_j p_ij dp_ij,
//   dq_i = sum_j p_ij (dp_ij - delta_i) k_j / sqrt(D), dk_j = sum_{h,i} p_ij (dp_ij - delta_i) q_i / sqrt(D),
//   dv_j = sum_{h,i} p_ij dOut_i.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

struct AttentionCase {
    int B, T, H, KVH, D, window;
};

bool sees(int i, int j, int window, const std::vector<int32_t>& mask, int b, int T) {
    return j <= i && (window == 0 || j > i - window) && mask[static_cast<size_t>(b) * T + j] != 0;
}

// Sequence 0 has scattered holes; sequence 1 starts with three masked keys (its first queries see
// nothing) and has a run of three more at 20..22 (with window 3, query 22 sees nothing either).
std::vector<int32_t> key_mask(int B, int T) {
    std::vector<int32_t> mask(static_cast<size_t>(B) * T, 1);
    for (int b = 0; b < B; ++b) {
        for (int j = 0; j < T; ++j) {
            const bool hole = b % 2 == 0 ? j % 7 == 3 : (j < 3 || (j >= 20 && j < 23));
            if (hole) mask[static_cast<size_t>(b) * T + j] = 0;
        }
    }
    return mask;
}

// Counts positions where exactly one of expected/actual is -inf (or actual is NaN), and replaces
// matching infinities by 0 so that worst_ratio measures the finite ones.
size_t split_infinities(std::vector<double>& expected, std::vector<float>& actual) {
    size_t mismatched = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
        const bool e_inf = std::isinf(expected[i]), a_inf = std::isinf(actual[i]);
        if (e_inf != a_inf || std::isnan(actual[i])) {
            ++mismatched;
        } else if (e_inf) {
            expected[i] = 0;
            actual[i] = 0;
        }
    }
    return mismatched;
}

// Elements that must be exactly zero (no visible key, no gradient) but are not.
size_t nonzero_at(const std::vector<char>& must_be_zero, const std::vector<float>& actual, int D) {
    size_t wrong = 0;
    for (size_t row = 0; row < must_be_zero.size(); ++row) {
        if (!must_be_zero[row]) continue;
        for (int c = 0; c < D; ++c) wrong += actual[row * D + c] != 0.0f;
    }
    return wrong;
}

void check_attention(const AttentionCase& shape, bool check_determinism) {
    const int B = shape.B, T = shape.T, H = shape.H, KVH = shape.KVH, D = shape.D, W = shape.window;
    const int group = H / KVH;
    const size_t q_count = static_cast<size_t>(B) * T * H * D, kv_count = static_cast<size_t>(B) * T * KVH * D;
    const size_t stat_count = static_cast<size_t>(B) * H * T;
    const std::vector<float> q = random_floats(q_count, 2.0f);
    const std::vector<float> k = random_floats(kv_count);
    const std::vector<float> v = random_floats(kv_count);
    const std::vector<float> d_out = random_floats(q_count);
    const std::vector<int32_t> mask = key_mask(B, T);
    auto q_at = [&](int b, int t, int h) { return (static_cast<size_t>(b) * T + t) * H * D + static_cast<size_t>(h) * D; };
    auto kv_at = [&](int b, int t, int g) {
        return (static_cast<size_t>(b) * T + t) * KVH * D + static_cast<size_t>(g) * D;
    };
    auto stat_at = [&](int b, int h, int t) { return (static_cast<size_t>(b) * H + h) * T + t; };

    // ---- the fp64 reference ----
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    std::vector<double> out_ref(q_count, 0.0), lse_ref(stat_count), dq_ref(q_count, 0.0), dk_ref(kv_count, 0.0),
        dv_ref(kv_count, 0.0);
    std::vector<char> blind(stat_count, 0);  // [B,T,H] rows of queries that see no key
    std::vector<double> p(T), dp(T);
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int i = 0; i < T; ++i) {
                const float* qi = &q[q_at(b, i, h)];
                const float* doi = &d_out[q_at(b, i, h)];
                double max = -INFINITY;
                for (int j = 0; j < T; ++j) {
                    p[j] = -INFINITY;
                    if (!sees(i, j, W, mask, b, T)) continue;
                    double s = 0;
                    for (int c = 0; c < D; ++c) s += static_cast<double>(qi[c]) * k[kv_at(b, j, g) + c];
                    p[j] = s * scale;
                    max = std::fmax(max, p[j]);
                }
                if (max == -INFINITY) {
                    lse_ref[stat_at(b, h, i)] = -INFINITY;
                    blind[(static_cast<size_t>(b) * T + i) * H + h] = 1;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < T; ++j) sum += p[j] == -INFINITY ? 0.0 : std::exp(p[j] - max);
                lse_ref[stat_at(b, h, i)] = max + std::log(sum);
                double delta = 0;
                for (int j = 0; j < T; ++j) {
                    p[j] = p[j] == -INFINITY ? 0.0 : std::exp(p[j] - max) / sum;
                    dp[j] = 0;
                    if (p[j] == 0.0) continue;
                    for (int c = 0; c < D; ++c) {
                        out_ref[q_at(b, i, h) + c] += p[j] * v[kv_at(b, j, g) + c];
                        dp[j] += static_cast<double>(doi[c]) * v[kv_at(b, j, g) + c];
                    }
                    delta += p[j] * dp[j];
                }
                for (int j = 0; j < T; ++j) {
                    if (p[j] == 0.0) continue;
                    const double ds = p[j] * (dp[j] - delta) * scale;
                    for (int c = 0; c < D; ++c) {
                        dq_ref[q_at(b, i, h) + c] += ds * k[kv_at(b, j, g) + c];
                        dk_ref[kv_at(b, j, g) + c] += ds * qi[c];
                        dv_ref[kv_at(b, j, g) + c] += p[j] * doi[c];
                    }
                }
            }
        }
    }

    // ---- the kernels ----
    float* q_d = device_copy(q);
    float* k_d = device_copy(k);
    float* v_d = device_copy(v);
    float* d_out_d = device_copy(d_out);
    int32_t* mask_d = device_copy(mask);
    float* out_d = device_poisoned<float>(q_count);
    float* lse_d = device_poisoned<float>(stat_count);
    float* dq_d = device_poisoned<float>(q_count);
    float* dk_d = device_poisoned<float>(kv_count);
    float* dv_d = device_poisoned<float>(kv_count);
    size_t scratch_bytes = 0;
    must(spin_attention_backward_scratch_bytes(B, T, H, &scratch_bytes), "spin_attention_backward_scratch_bytes");
    void* scratch_d = device_poisoned<float>(scratch_bytes / sizeof(float));

    must(spin_attention_forward(nullptr, out_d, lse_d, q_d, k_d, v_d, mask_d, B, T, H, KVH, D, W),
         "spin_attention_forward");
    must(spin_attention_backward(nullptr, dq_d, dk_d, dv_d, scratch_d, d_out_d, q_d, k_d, v_d, mask_d, out_d, lse_d, B,
                                 T, H, KVH, D, W),
         "spin_attention_backward");
    const std::vector<float> out = host_copy(out_d, q_count);
    std::vector<float> lse = host_copy(lse_d, stat_count);
    const std::vector<float> dq = host_copy(dq_d, q_count);
    const std::vector<float> dk = host_copy(dk_d, kv_count);
    const std::vector<float> dv = host_copy(dv_d, kv_count);

    const size_t lse_inf_mismatch = split_infinities(lse_ref, lse);
    const size_t blind_nonzero = nonzero_at(blind, out, D) + nonzero_at(blind, dq, D);
    size_t blind_rows = 0;
    for (char c : blind) blind_rows += c;
    // fp32 against fp64: a few ulps of rounding per term over at most 70 keys and 64 columns.
    const double ratios[5] = {worst_ratio(out_ref, out, 1e-6, 1e-5), worst_ratio(lse_ref, lse, 1e-6, 1e-5),
                              worst_ratio(dq_ref, dq, 1e-6, 1e-4), worst_ratio(dk_ref, dk, 1e-6, 1e-4),
                              worst_ratio(dv_ref, dv, 1e-6, 1e-4)};
    bool ok = lse_inf_mismatch == 0 && blind_nonzero == 0;
    for (double r : ratios) ok = ok && r <= 1.0;

    bool same_bits = true;
    if (check_determinism) {
        float* dq2_d = device_poisoned<float>(q_count);
        float* dk2_d = device_poisoned<float>(kv_count);
        float* dv2_d = device_poisoned<float>(kv_count);
        must(spin_attention_backward(nullptr, dq2_d, dk2_d, dv2_d, scratch_d, d_out_d, q_d, k_d, v_d, mask_d, out_d,
                                     lse_d, B, T, H, KVH, D, W),
             "spin_attention_backward (again)");
        same_bits = std::memcmp(dq.data(), host_copy(dq2_d, q_count).data(), q_count * sizeof(float)) == 0 &&
                    std::memcmp(dk.data(), host_copy(dk2_d, kv_count).data(), kv_count * sizeof(float)) == 0 &&
                    std::memcmp(dv.data(), host_copy(dv2_d, kv_count).data(), kv_count * sizeof(float)) == 0;
        for (float* ptr : {dq2_d, dk2_d, dv2_d}) cudaFree(ptr);
    }
    report(ok && same_bits,
           "spin_attention_forward/backward B=%d T=%d H=%d KVH=%d D=%d window=%d: worst ratios out %.2f lse %.2f "
           "dq %.2f dk %.2f dv %.2f; %zu blind rows (%zu -inf mismatches, %zu nonzero)%s",
           B, T, H, KVH, D, W, ratios[0], ratios[1], ratios[2], ratios[3], ratios[4], blind_rows, lse_inf_mismatch,
           blind_nonzero, check_determinism ? (same_bits ? "; backward twice: same bits" : "; backward twice: BITS DIFFER") : "");
    for (void* ptr : {static_cast<void*>(q_d), static_cast<void*>(k_d), static_cast<void*>(v_d),
                      static_cast<void*>(d_out_d), static_cast<void*>(mask_d), static_cast<void*>(out_d),
                      static_cast<void*>(lse_d), static_cast<void*>(dq_d), static_cast<void*>(dk_d),
                      static_cast<void*>(dv_d), scratch_d}) {
        cudaFree(ptr);
    }
}

// Two sequences of 13 and 7 cached positions in blocks of 4, their blocks out of order among 8
// physical blocks (1 and 4 unused, holding values that must not be read); the queries include
// several of one sequence (prefill-style), first positions, and two a caller's bug would make:
// a sequence outside the table and a position whose block has no entry (-1). Those give NaN.
void check_cached(int D, int window) {
    const int H = 4, KVH = 2, group = H / KVH, S = 2, maxBlocks = 4, blockSize = 4, R = 8 * blockSize;
    const std::vector<int32_t> table = {5, 2, 7, 0, 3, 6, -1, -1};
    const std::vector<int32_t> seqs = {0, 1, 0, 1, 0, 1, 0, 2, 1};
    const std::vector<int32_t> positions = {12, 6, 5, 0, 0, 3, 9, 0, 9};
    const std::vector<char> valid = {1, 1, 1, 1, 1, 1, 1, 0, 0};
    const int M = static_cast<int>(seqs.size());
    const std::vector<float> q = random_floats(static_cast<size_t>(M) * H * D, 2.0f);
    const std::vector<float> k_cache = random_floats(static_cast<size_t>(R) * KVH * D);
    const std::vector<float> v_cache = random_floats(static_cast<size_t>(R) * KVH * D);

    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    std::vector<double> expected(q.size(), 0.0);
    for (int m = 0; m < M; ++m) {
        if (!valid[m]) continue;
        const int pos = positions[m];
        const int first = window > 0 ? std::max(0, pos - window + 1) : 0;
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            const float* qm = &q[(static_cast<size_t>(m) * H + h) * D];
            std::vector<double> s;
            std::vector<size_t> rows;
            double max = -INFINITY;
            for (int p = first; p <= pos; ++p) {
                const size_t row = static_cast<size_t>(table[seqs[m] * maxBlocks + p / blockSize]) * blockSize + p % blockSize;
                rows.push_back((row * KVH + g) * D);
                double dot = 0;
                for (int c = 0; c < D; ++c) dot += static_cast<double>(qm[c]) * k_cache[rows.back() + c];
                s.push_back(dot * scale);
                max = std::fmax(max, s.back());
            }
            double sum = 0;
            for (double& x : s) sum += (x = std::exp(x - max));
            for (size_t n = 0; n < s.size(); ++n) {
                for (int c = 0; c < D; ++c) expected[(static_cast<size_t>(m) * H + h) * D + c] += s[n] / sum * v_cache[rows[n] + c];
            }
        }
    }

    float* q_d = device_copy(q);
    float* k_d = device_copy(k_cache);
    float* v_d = device_copy(v_cache);
    int32_t* table_d = device_copy(table);
    int32_t* seqs_d = device_copy(seqs);
    int32_t* positions_d = device_copy(positions);
    float* out_d = device_poisoned<float>(q.size());
    // Poisoned with 0 rather than NaN, so that the NaN the bad tokens must get is the kernel's.
    must(cudaMemset(out_d, 0, q.size() * sizeof(float)), "cudaMemset");
    must(spin_attention_cached_forward(nullptr, out_d, q_d, k_d, v_d, table_d, seqs_d, positions_d, M, H, KVH, D, R, S,
                                       maxBlocks, blockSize, window),
         "spin_attention_cached_forward");
    std::vector<float> out = host_copy(out_d, q.size());
    size_t bad_not_nan = 0;
    for (int m = 0; m < M; ++m) {
        if (valid[m]) continue;
        for (size_t e = static_cast<size_t>(m) * H * D; e < static_cast<size_t>(m + 1) * H * D; ++e) {
            bad_not_nan += !std::isnan(out[e]);
            out[e] = 0.0f;  // expected holds 0 there
        }
    }
    const double ratio = worst_ratio(expected, out, 1e-6, 1e-5);
    report(ratio <= 1.0 && bad_not_nan == 0,
           "spin_attention_cached_forward M=%d H=%d KVH=%d D=%d window=%d blockSize=%d: worst ratio %.2f, %zu bad-token "
           "elements not NaN",
           M, H, KVH, D, window, blockSize, ratio, bad_not_nan);

    // Poisoned (NaN) this time: every element of the valid tokens must be written.
    float* out2_d = device_poisoned<float>(q.size());
    must(spin_attention_cached_forward(nullptr, out2_d, q_d, k_d, v_d, table_d, seqs_d, positions_d, M, H, KVH, D, R, S,
                                       maxBlocks, blockSize, window),
         "spin_attention_cached_forward");
    std::vector<float> out2 = host_copy(out2_d, q.size());
    for (int m = 0; m < M; ++m) {
        if (!valid[m]) std::fill(out2.begin() + static_cast<size_t>(m) * H * D, out2.begin() + static_cast<size_t>(m + 1) * H * D, 0.0f);
    }
    const double ratio2 = worst_ratio(expected, out2, 1e-6, 1e-5);
    report(ratio2 <= 1.0, "spin_attention_cached_forward D=%d window=%d into poisoned output: worst ratio %.2f", D,
           window, ratio2);
    for (void* ptr : {static_cast<void*>(q_d), static_cast<void*>(k_d), static_cast<void*>(v_d),
                      static_cast<void*>(table_d), static_cast<void*>(seqs_d), static_cast<void*>(positions_d),
                      static_cast<void*>(out_d), static_cast<void*>(out2_d)}) {
        cudaFree(ptr);
    }
}

void expect_status(int status, int expected, const char* what) {
    report(status == expected, "%s: status %d (expected %d)%s%s", what, status, expected,
           status != SPIN_OK ? ": " : "", status != SPIN_OK ? spin_last_error() : "");
}

// Bad arguments are refused before anything is launched; zero-sized problems need no tensors.
void check_arguments() {
    float* f = device_poisoned<float>(64);
    int32_t* i = device_poisoned<int32_t>(64);
    const int bad = SPIN_ERR_INVALID_ARG;
    expect_status(spin_attention_forward(nullptr, f, f, f, f, f, i, 1, 2, 3, 2, 8, 0), bad, "forward H=3 KVH=2");
    expect_status(spin_attention_forward(nullptr, f, f, f, f, f, i, 1, 2, 2, 0, 8, 0), bad, "forward KVH=0");
    expect_status(spin_attention_forward(nullptr, f, f, f, f, f, i, 1, 2, 2, 1, 7, 0), bad, "forward D=7");
    expect_status(spin_attention_forward(nullptr, f, f, f, f, f, i, 1, 2, 2, 1, 258, 0), bad, "forward D=258");
    expect_status(spin_attention_forward(nullptr, f, f, f, f, f, i, -1, 2, 2, 1, 8, 0), bad, "forward B=-1");
    expect_status(spin_attention_forward(nullptr, f, f, f, f, f, i, 1, 2, 2, 1, 8, -1), bad, "forward window=-1");
    expect_status(spin_attention_forward(nullptr, nullptr, f, f, f, f, i, 1, 2, 2, 1, 8, 0), bad, "forward NULL out");
    expect_status(spin_attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 2, 2, 1, 8, 0),
                  SPIN_OK, "forward B=0 with NULL tensors");
    expect_status(spin_attention_backward(nullptr, f, f, f, nullptr, f, f, f, f, i, f, f, 1, 2, 2, 1, 8, 0), bad,
                  "backward NULL scratch");
    expect_status(spin_attention_backward(nullptr, f, f, f, f, f, f, f, f, i, f, f, 1, 2, 4, 3, 8, 0), bad,
                  "backward H=4 KVH=3");
    expect_status(spin_attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, 2, 0, 2, 1, 8, 0),
                  SPIN_OK, "backward T=0 with NULL tensors");
    size_t bytes = 0;
    expect_status(spin_attention_backward_scratch_bytes(2, 5, 3, &bytes), SPIN_OK, "backward scratch bytes");
    report(bytes == 2 * 5 * 3 * sizeof(float), "backward scratch for B=2 T=5 H=3: %zu bytes (expected %zu)", bytes,
           2 * 5 * 3 * sizeof(float));
    expect_status(spin_attention_backward_scratch_bytes(2, -5, 3, &bytes), bad, "backward scratch bytes T=-5");
    expect_status(spin_attention_cached_forward(nullptr, f, f, f, f, i, i, i, 1, 2, 1, 8, 4, 1, 1, 0, 0), bad,
                  "cached blockSize=0");
    expect_status(spin_attention_cached_forward(nullptr, f, f, f, f, i, i, i, 1, 2, 1, 9, 4, 1, 1, 4, 0), bad,
                  "cached D=9");
    expect_status(spin_attention_cached_forward(nullptr, f, f, f, f, nullptr, i, i, 1, 2, 1, 8, 4, 1, 1, 4, 0), bad,
                  "cached NULL blockTable");
    expect_status(spin_attention_cached_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0,
                                                2, 1, 8, 0, 1, 1, 4, 0),
                  SPIN_OK, "cached M=0 with NULL tensors");
    cudaFree(f);
    cudaFree(i);
}

}  // namespace

// T = 1 (one query, which in sequence 1 sees nothing), 5 (under a tile), 37 and 70 (partial last
// tiles of 32), GQA and one head, D = 8, 24 (not a power of two) and 64, without a window and with
// one of 3 keys. Then windows that span tiles and D = 256 (16-row tiles, shared memory above the
// default 48 KiB).
SPIN_KERNEL_CHECKS(attention) {
    const int heads[][2] = {{4, 2}, {1, 1}};
    for (int T : {1, 5, 37, 70}) {
        for (const auto& hk : heads) {
            for (int D : {8, 24, 64}) {
                for (int window : {0, 3}) check_attention({2, T, hk[0], hk[1], D, window}, T >= 37);
            }
        }
    }
    check_attention({2, 70, 4, 2, 24, 40}, true);
    check_attention({2, 70, 2, 2, 8, 100}, false);
    check_attention({2, 37, 2, 1, 256, 0}, true);
    check_attention({2, 37, 2, 1, 256, 20}, false);
    for (int D : {8, 24, 64, 256}) {
        for (int window : {0, 3, 6}) check_cached(D, window);
    }
    check_arguments();
}
