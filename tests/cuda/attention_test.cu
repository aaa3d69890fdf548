// spin_attention_forward / backward / cached_forward (kernels/attention.cu) against an fp64 host
// reference written here from the semantics of Backend.attentionForward: the full softmax over
// each query's visible keys, and the backward by its analytic formulas
//   p_ij = softmax_j(s_ij), s_ij = q_i . k_j / sqrt(D), dp_ij = dOut_i . v_j, delta_i = sum_j p_ij dp_ij,
//   dq_i = sum_j p_ij (dp_ij - delta_i) k_j / sqrt(D), dk_j = sum_{h,i} p_ij (dp_ij - delta_i) q_i / sqrt(D),
//   dv_j = sum_{h,i} p_ij dOut_i.
// Each check runs in both compute dtypes: in bf16 on bf16-valued inputs (the reference sees exactly
// the kernel's), out and the gradients held to DESIGN section 4's 2x / 3x of rounding the exact
// result once (within_dtype_tolerance), lse (fp32, from the same scores) to the fp32 bound.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
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

// The per-element bound in fp32; in bf16 the relative L2 error within factor times a naive bf16
// computation's (plus fp32_limit). Appends what it measured to `text`.
bool output_ok(int dtype, const std::vector<double>& expected, const std::vector<float>& actual, double rtol,
               double fp32_limit, double factor, const char* name, std::string& text) {
    char part[96];
    bool ok;
    double norm = 0;
    for (double e : expected) norm += e * e;
    // A reference of zeros (T = 1: every gradient but dv cancels exactly) has no relative error to
    // measure; it gets the fp32 per-element bound in either dtype.
    if (dtype == SPIN_DTYPE_F32 || norm == 0) {
        const double ratio = worst_ratio(expected, actual, 1e-6, rtol);
        ok = ratio <= 1.0;
        std::snprintf(part, sizeof part, dtype == SPIN_DTYPE_F32 ? " %s %.2f" : " %s (zeros) worst ratio %.2f", name,
                      ratio);
    } else {
        const double error = relative_error(expected, actual);
        ok = within_dtype_tolerance(error, expected, dtype, fp32_limit, factor);
        std::snprintf(part, sizeof part, " %s %.1e (naive %.1e, bound %gx)", name, error, bf16_rounding_error(expected),
                      factor);
    }
    text += part;
    return ok;
}

void check_attention(int dtype, const AttentionCase& shape, bool check_determinism) {
    const int B = shape.B, T = shape.T, H = shape.H, KVH = shape.KVH, D = shape.D, W = shape.window;
    const int group = H / KVH;
    const size_t q_count = static_cast<size_t>(B) * T * H * D, kv_count = static_cast<size_t>(B) * T * KVH * D;
    const size_t stat_count = static_cast<size_t>(B) * H * T;
    const std::vector<float> q = representable(random_floats(q_count, 2.0f), dtype);
    const std::vector<float> k = representable(random_floats(kv_count), dtype);
    const std::vector<float> v = representable(random_floats(kv_count), dtype);
    const std::vector<float> d_out = representable(random_floats(q_count), dtype);
    const std::vector<int32_t> mask = key_mask(B, T);
    auto q_at = [&](int b, int t, int h) { return (static_cast<size_t>(b) * T + t) * H * D + static_cast<size_t>(h) * D; };
    auto kv_at = [&](int b, int t, int g) {
        return (static_cast<size_t>(b) * T + t) * KVH * D + static_cast<size_t>(g) * D;
    };
    auto stat_at = [&](int b, int h, int t) { return (static_cast<size_t>(b) * H + h) * T + t; };

    // ---- the fp64 reference: the forward ----
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    // p[j] = softmax weight of key j for query i of head h in sequence b (0 for a key it does not
    // see); returns lse, -inf for a query that sees no key.
    std::vector<double> p(T);
    auto softmax = [&](int b, int h, int i) {
        const float* qi = &q[q_at(b, i, h)];
        double max = -INFINITY;
        for (int j = 0; j < T; ++j) {
            p[j] = -INFINITY;
            if (!sees(i, j, W, mask, b, T)) continue;
            double s = 0;
            for (int c = 0; c < D; ++c) s += static_cast<double>(qi[c]) * k[kv_at(b, j, h / group) + c];
            p[j] = s * scale;
            max = std::fmax(max, p[j]);
        }
        if (max == -INFINITY) return max;
        double sum = 0;
        for (int j = 0; j < T; ++j) sum += p[j] == -INFINITY ? 0.0 : std::exp(p[j] - max);
        for (int j = 0; j < T; ++j) p[j] = p[j] == -INFINITY ? 0.0 : std::exp(p[j] - max) / sum;
        return max + std::log(sum);
    };
    std::vector<double> out_ref(q_count, 0.0), lse_ref(stat_count), dq_ref(q_count, 0.0), dk_ref(kv_count, 0.0),
        dv_ref(kv_count, 0.0);
    std::vector<char> blind(stat_count, 0);  // [B,T,H] rows of queries that see no key
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            for (int i = 0; i < T; ++i) {
                lse_ref[stat_at(b, h, i)] = softmax(b, h, i);
                if (lse_ref[stat_at(b, h, i)] == -INFINITY) {
                    blind[(static_cast<size_t>(b) * T + i) * H + h] = 1;
                    continue;
                }
                for (int j = 0; j < T; ++j) {
                    if (p[j] == 0.0) continue;
                    for (int c = 0; c < D; ++c) out_ref[q_at(b, i, h) + c] += p[j] * v[kv_at(b, j, h / group) + c];
                }
            }
        }
    }

    // ---- the kernels ----
    void* q_d = device_typed(q, dtype);
    void* k_d = device_typed(k, dtype);
    void* v_d = device_typed(v, dtype);
    void* d_out_d = device_typed(d_out, dtype);
    int32_t* mask_d = device_copy(mask);
    void* out_d = device_poisoned_typed(q_count, dtype);
    float* lse_d = device_poisoned<float>(stat_count);
    void* dq_d = device_poisoned_typed(q_count, dtype);
    void* dk_d = device_poisoned_typed(kv_count, dtype);
    void* dv_d = device_poisoned_typed(kv_count, dtype);
    size_t scratch_bytes = 0;
    must(spin_attention_backward_scratch_bytes(B, T, H, &scratch_bytes), "spin_attention_backward_scratch_bytes");
    void* scratch_d = device_poisoned<float>(scratch_bytes / sizeof(float));

    must(spin_attention_forward(nullptr, dtype, out_d, lse_d, q_d, k_d, v_d, mask_d, B, T, H, KVH, D, W),
         "spin_attention_forward");
    must(spin_attention_backward(nullptr, dtype, dq_d, dk_d, dv_d, scratch_d, d_out_d, q_d, k_d, v_d, mask_d, out_d,
                                 lse_d, B, T, H, KVH, D, W),
         "spin_attention_backward");
    const std::vector<float> out = host_typed(out_d, q_count, dtype);
    std::vector<float> lse = host_copy(lse_d, stat_count);
    const std::vector<float> dq = host_typed(dq_d, q_count, dtype);
    const std::vector<float> dk = host_typed(dk_d, kv_count, dtype);
    const std::vector<float> dv = host_typed(dv_d, kv_count, dtype);

    // ---- the fp64 reference: the backward, on its inputs ----
    // delta_i = dOut_i . out_i over the out the backward is given, the forward kernel's: in bf16 that
    // out is rounded, and where a query sees few keys the cancellation in dp - delta amplifies its
    // rounding into dq and dk beyond 3x a rounding of the exact gradient (up to 3.3x measured with
    // window 3). That error belongs to keeping out in bf16, not to the backward.
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int i = 0; i < T; ++i) {
                if (softmax(b, h, i) == -INFINITY) continue;  // no key seen: no gradient
                const float* qi = &q[q_at(b, i, h)];
                const float* doi = &d_out[q_at(b, i, h)];
                double delta = 0;
                for (int c = 0; c < D; ++c) delta += static_cast<double>(doi[c]) * out[q_at(b, i, h) + c];
                for (int j = 0; j < T; ++j) {
                    if (p[j] == 0.0) continue;
                    double dpj = 0;
                    for (int c = 0; c < D; ++c) dpj += static_cast<double>(doi[c]) * v[kv_at(b, j, g) + c];
                    const double ds = p[j] * (dpj - delta) * scale;
                    for (int c = 0; c < D; ++c) {
                        dq_ref[q_at(b, i, h) + c] += ds * k[kv_at(b, j, g) + c];
                        dk_ref[kv_at(b, j, g) + c] += ds * qi[c];
                        dv_ref[kv_at(b, j, g) + c] += p[j] * doi[c];
                    }
                }
            }
        }
    }

    const size_t lse_inf_mismatch = split_infinities(lse_ref, lse);
    const size_t blind_nonzero = nonzero_at(blind, out, D) + nonzero_at(blind, dq, D);
    size_t blind_rows = 0;
    for (char c : blind) blind_rows += c;
    // fp32 against fp64: a few ulps of rounding per term over at most 70 keys and 64 columns. lse
    // keeps that bound in bf16 too: it is fp32, from scores of the same (bf16-valued) q and k.
    std::string measured = dtype == SPIN_DTYPE_F32 ? ": worst ratios" : ": relative errors";
    const double lse_ratio = worst_ratio(lse_ref, lse, 1e-6, 1e-5);
    bool ok = lse_inf_mismatch == 0 && blind_nonzero == 0 && lse_ratio <= 1.0;
    ok = output_ok(dtype, out_ref, out, 1e-5, 1e-5, 2, "out", measured) && ok;
    ok = output_ok(dtype, dq_ref, dq, 1e-4, 1e-4, 3, "dq", measured) && ok;
    ok = output_ok(dtype, dk_ref, dk, 1e-4, 1e-4, 3, "dk", measured) && ok;
    ok = output_ok(dtype, dv_ref, dv, 1e-4, 1e-4, 3, "dv", measured) && ok;

    bool same_bits = true;
    if (check_determinism) {
        void* dq2_d = device_poisoned_typed(q_count, dtype);
        void* dk2_d = device_poisoned_typed(kv_count, dtype);
        void* dv2_d = device_poisoned_typed(kv_count, dtype);
        must(spin_attention_backward(nullptr, dtype, dq2_d, dk2_d, dv2_d, scratch_d, d_out_d, q_d, k_d, v_d, mask_d,
                                     out_d, lse_d, B, T, H, KVH, D, W),
             "spin_attention_backward (again)");
        // Widening bf16 is exact and one-to-one, so equal widened bits are equal bits in either dtype.
        auto same = [&](void* again, const std::vector<float>& first) {
            return std::memcmp(host_typed(again, first.size(), dtype).data(), first.data(),
                               first.size() * sizeof(float)) == 0;
        };
        same_bits = same(dq2_d, dq) && same(dk2_d, dk) && same(dv2_d, dv);
        for (void* ptr : {dq2_d, dk2_d, dv2_d}) cudaFree(ptr);
    }
    report(ok && same_bits,
           "spin_attention_forward/backward %s B=%d T=%d H=%d KVH=%d D=%d window=%d%s; lse worst ratio %.2f; %zu blind "
           "rows (%zu -inf mismatches, %zu nonzero)%s",
           dtype_name(dtype), B, T, H, KVH, D, W, measured.c_str(), lse_ratio, blind_rows, lse_inf_mismatch,
           blind_nonzero, check_determinism ? (same_bits ? "; backward twice: same bits" : "; backward twice: BITS DIFFER") : "");
    for (void* ptr : {q_d, k_d, v_d, d_out_d, static_cast<void*>(mask_d), out_d, static_cast<void*>(lse_d), dq_d, dk_d,
                      dv_d, scratch_d}) {
        cudaFree(ptr);
    }
}

// ---- the tensor-core forward (kernels/attention_mma.cu) ----------------------------------------
// spin_attention_forward on bf16 with D = 64 or 128 runs the tensor-core kernel; here it and
// spin_attention_forward_simple (the simple kernel) are both held, element by element, to an fp64
// reference on the same bf16-valued inputs. The bound is derived from what the tensor-core kernel
// rounds: P to bf16 before P V (relative 2^-9 per term, so at most 2^-9 sum_j p_j |v_jc| on out) and
// out itself to bf16 (2^-9 |out|); twice that, plus fp32 noise, is
//   |out - ref| <= 2^-8 (|ref| + sum_j p_j |v_jc|) + 1e-6.
// The simple kernel rounds only out and meets the same bound. lse is fp32 from the same scores:
// the fp32 bound of check_attention. Queries that see no key must give exact zeros and -inf.
//
// Masks (mask_kind): 0 all keys; 1 holes at the first and last key of every 64-key tile (the
// kernel's tile edges), at key 1 and at T-1; 2 sequence 1 padded on the left by `pad` masked keys
// (a fully masked row prefix, a whole key tile of it when pad > 64), sequence 0 with kind 1's holes.
std::vector<int32_t> mma_key_mask(int B, int T, int kind, int pad) {
    std::vector<int32_t> mask(static_cast<size_t>(B) * T, 1);
    for (int b = 0; b < B; ++b) {
        for (int j = 0; j < T; ++j) {
            const bool edge_hole = j % 64 == 0 || j % 64 == 63 || j == 1 || j == T - 1;
            bool hole = false;
            if (kind == 1) hole = edge_hole;
            if (kind == 2) hole = b % 2 == 1 ? j < pad : edge_hole;
            if (hole) mask[static_cast<size_t>(b) * T + j] = 0;
        }
    }
    return mask;
}

void check_attention_mma(int B, int T, int H, int KVH, int D, int W, int mask_kind, int pad = 0) {
    const int dtype = SPIN_DTYPE_BF16, group = H / KVH;
    const size_t q_count = static_cast<size_t>(B) * T * H * D, kv_count = static_cast<size_t>(B) * T * KVH * D;
    const size_t stat_count = static_cast<size_t>(B) * H * T;
    const std::vector<float> q = representable(random_floats(q_count, 2.0f), dtype);
    const std::vector<float> k = representable(random_floats(kv_count), dtype);
    const std::vector<float> v = representable(random_floats(kv_count), dtype);
    const std::vector<int32_t> mask = mma_key_mask(B, T, mask_kind, pad);
    auto q_at = [&](int b, int t, int h) { return (static_cast<size_t>(b) * T + t) * H * D + static_cast<size_t>(h) * D; };
    auto kv_at = [&](int b, int t, int g) { return (static_cast<size_t>(b) * T + t) * KVH * D + static_cast<size_t>(g) * D; };

    // fp64 reference: out, lse and the bound's sum_j p_j |v_jc|.
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    std::vector<double> out_ref(q_count, 0.0), abs_ref(q_count, 0.0), lse_ref(stat_count);
    std::vector<double> s(T);
    size_t blind_rows = 0;
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int i = 0; i < T; ++i) {
                double max = -INFINITY;
                for (int j = 0; j < T; ++j) {
                    s[j] = -INFINITY;
                    if (!sees(i, j, W, mask, b, T)) continue;
                    double dot = 0;
                    for (int c = 0; c < D; ++c) dot += static_cast<double>(q[q_at(b, i, h) + c]) * k[kv_at(b, j, g) + c];
                    s[j] = dot * scale;
                    max = std::fmax(max, s[j]);
                }
                const size_t stat = (static_cast<size_t>(b) * H + h) * T + i;
                if (max == -INFINITY) {
                    lse_ref[stat] = -INFINITY;
                    ++blind_rows;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < T; ++j) sum += s[j] == -INFINITY ? 0.0 : std::exp(s[j] - max);
                lse_ref[stat] = max + std::log(sum);
                for (int j = 0; j < T; ++j) {
                    if (s[j] == -INFINITY) continue;
                    const double p = std::exp(s[j] - max) / sum;
                    for (int c = 0; c < D; ++c) {
                        out_ref[q_at(b, i, h) + c] += p * v[kv_at(b, j, g) + c];
                        abs_ref[q_at(b, i, h) + c] += p * std::fabs(v[kv_at(b, j, g) + c]);
                    }
                }
            }
        }
    }

    void* q_d = device_typed(q, dtype);
    void* k_d = device_typed(k, dtype);
    void* v_d = device_typed(v, dtype);
    int32_t* mask_d = device_copy(mask);
    void* out_d = device_poisoned_typed(q_count, dtype);
    void* out2_d = device_poisoned_typed(q_count, dtype);
    void* simple_d = device_poisoned_typed(q_count, dtype);
    float* lse_d = device_poisoned<float>(stat_count);
    float* lse2_d = device_poisoned<float>(stat_count);
    float* lse_simple_d = device_poisoned<float>(stat_count);
    const auto start = std::chrono::steady_clock::now();
    must(spin_attention_forward(nullptr, dtype, out_d, lse_d, q_d, k_d, v_d, mask_d, B, T, H, KVH, D, W),
         "spin_attention_forward");
    const double mma_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    must(spin_attention_forward(nullptr, dtype, out2_d, lse2_d, q_d, k_d, v_d, mask_d, B, T, H, KVH, D, W),
         "spin_attention_forward (again)");
    must(spin_attention_forward_simple(nullptr, dtype, simple_d, lse_simple_d, q_d, k_d, v_d, mask_d, B, T, H, KVH, D,
                                       W),
         "spin_attention_forward_simple");
    const std::vector<float> out = host_typed(out_d, q_count, dtype);
    const std::vector<float> simple = host_typed(simple_d, q_count, dtype);
    const std::vector<float> lse = host_copy(lse_d, stat_count);
    const std::vector<float> lse_simple = host_copy(lse_simple_d, stat_count);
    const bool same_bits = std::memcmp(host_typed(out2_d, q_count, dtype).data(), out.data(), q_count * 4) == 0 &&
                           std::memcmp(host_copy(lse2_d, stat_count).data(), lse.data(), stat_count * 4) == 0;

    // Worst |x - ref| / bound over the elements (<= 1 passes); NaN anywhere fails.
    auto out_ratio = [&](const std::vector<float>& x) {
        double worst = 0;
        for (size_t e = 0; e < q_count; ++e) {
            const double bound = 0x1p-8 * (std::fabs(out_ref[e]) + abs_ref[e]) + 1e-6;
            const double r = std::fabs(x[e] - out_ref[e]) / bound;
            worst = std::isnan(x[e]) ? INFINITY : std::fmax(worst, r);
        }
        return worst;
    };
    auto lse_ratio = [&](const std::vector<float>& x) {
        double worst = 0;
        for (size_t e = 0; e < stat_count; ++e) {
            if (std::isinf(lse_ref[e])) {
                if (!(std::isinf(x[e]) && x[e] < 0)) worst = INFINITY;  // a blind row: exactly -inf
                continue;
            }
            const double r = std::fabs(x[e] - lse_ref[e]) / (1e-6 + 1e-5 * std::fabs(lse_ref[e]));
            worst = std::isnan(x[e]) ? INFINITY : std::fmax(worst, r);
        }
        return worst;
    };
    // Blind rows have out_ref = 0 and abs_ref = 0: the bound of 1e-6 leaves only (near) zeros, and
    // exact zeros are what both kernels write; checked exactly here.
    size_t blind_nonzero = 0;
    for (size_t e = 0; e < q_count; ++e) blind_nonzero += abs_ref[e] == 0 && out_ref[e] == 0 && out[e] != 0.0f;
    double simple_gap = 0;
    for (size_t e = 0; e < q_count; ++e) simple_gap = std::fmax(simple_gap, std::fabs(out[e] - simple[e]));
    const double r_out = out_ratio(out), r_simple = out_ratio(simple), r_lse = lse_ratio(lse),
                 r_lse_simple = lse_ratio(lse_simple);

    // The backward on this forward's out and lse (dq and dk/dv on tensor cores here), against the fp64 formulas with delta over the given out, as check_attention does; held
    // to DESIGN section 4's 3x rule on relative L2 error, blind rows' dq exactly zero.
    const std::vector<float> d_out = representable(random_floats(q_count), dtype);
    void* d_out_d = device_typed(d_out, dtype);
    void* dq_d = device_poisoned_typed(q_count, dtype);
    void* dk_d = device_poisoned_typed(kv_count, dtype);
    void* dv_d = device_poisoned_typed(kv_count, dtype);
    size_t scratch_bytes = 0;
    must(spin_attention_backward_scratch_bytes(B, T, H, &scratch_bytes), "spin_attention_backward_scratch_bytes");
    void* scratch_d = device_poisoned<float>(scratch_bytes / sizeof(float));
    must(spin_attention_backward(nullptr, dtype, dq_d, dk_d, dv_d, scratch_d, d_out_d, q_d, k_d, v_d, mask_d, out_d,
                                 lse_d, B, T, H, KVH, D, W),
         "spin_attention_backward");
    const std::vector<float> dq = host_typed(dq_d, q_count, dtype);
    const std::vector<float> dk = host_typed(dk_d, kv_count, dtype);
    const std::vector<float> dv = host_typed(dv_d, kv_count, dtype);
    std::vector<double> dq_ref(q_count, 0.0), dk_ref(kv_count, 0.0), dv_ref(kv_count, 0.0);
    std::vector<char> blind_q(q_count, 0), seen_k(kv_count, 0);
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int i = 0; i < T; ++i) {
                const double l = lse_ref[(static_cast<size_t>(b) * H + h) * T + i];
                if (l == -INFINITY) {
                    for (int c = 0; c < D; ++c) blind_q[q_at(b, i, h) + c] = 1;
                    continue;
                }
                double delta = 0;
                for (int c = 0; c < D; ++c) delta += static_cast<double>(d_out[q_at(b, i, h) + c]) * out[q_at(b, i, h) + c];
                for (int j = 0; j < T; ++j) {
                    if (!sees(i, j, W, mask, b, T)) continue;
                    double dot = 0, dp = 0;
                    for (int c = 0; c < D; ++c) {
                        dot += static_cast<double>(q[q_at(b, i, h) + c]) * k[kv_at(b, j, g) + c];
                        dp += static_cast<double>(d_out[q_at(b, i, h) + c]) * v[kv_at(b, j, g) + c];
                    }
                    const double p = std::exp(dot * scale - l), ds = p * (dp - delta) * scale;
                    for (int c = 0; c < D; ++c) {
                        dq_ref[q_at(b, i, h) + c] += ds * k[kv_at(b, j, g) + c];
                        dk_ref[kv_at(b, j, g) + c] += ds * q[q_at(b, i, h) + c];
                        dv_ref[kv_at(b, j, g) + c] += p * d_out[q_at(b, i, h) + c];
                        seen_k[kv_at(b, j, g) + c] = 1;
                    }
                }
            }
        }
    }
    // dq of blind queries and dk/dv of keys no query sees (masked, or past every window) are exact zeros.
    size_t dq_blind_nonzero = 0, dkdv_blind_nonzero = 0;
    for (size_t e = 0; e < q_count; ++e) dq_blind_nonzero += blind_q[e] && dq[e] != 0.0f;
    for (size_t e = 0; e < kv_count; ++e) dkdv_blind_nonzero += !seen_k[e] && (dk[e] != 0.0f || dv[e] != 0.0f);
    std::string dq_text;
    const bool dq_ok = output_ok(dtype, dq_ref, dq, 1e-4, 1e-4, 3, "dq", dq_text) && dq_blind_nonzero == 0 &&
                       output_ok(dtype, dk_ref, dk, 1e-4, 1e-4, 3, "dk", dq_text) &&
                       output_ok(dtype, dv_ref, dv, 1e-4, 1e-4, 3, "dv", dq_text) && dkdv_blind_nonzero == 0;
    for (void* ptr : {d_out_d, dq_d, dk_d, dv_d, scratch_d}) cudaFree(ptr);

    const bool ok = r_out <= 1 && r_simple <= 1 && r_lse <= 1 && r_lse_simple <= 1 && blind_nonzero == 0 && same_bits &&
                    dq_ok;
    report(ok,
           "spin_attention_forward tensor cores bf16 B=%d T=%d H=%d KVH=%d D=%d window=%d mask=%d pad=%d: out worst "
           "ratio %.2f (simple %.2f), lse %.2f (simple %.2f), max |mma - simple| %.2e, %zu blind rows (%zu nonzero), "
           "%s, %.0f ms emulated; backward%s (%zu blind dq, %zu blind dk/dv nonzero)",
           B, T, H, KVH, D, W, mask_kind, pad, r_out, r_simple, r_lse, r_lse_simple, simple_gap, blind_rows,
           blind_nonzero, same_bits ? "twice: same bits" : "twice: BITS DIFFER", mma_ms, dq_text.c_str(),
           dq_blind_nonzero, dkdv_blind_nonzero);
    for (void* ptr : {q_d, k_d, v_d, static_cast<void*>(mask_d), out_d, out2_d, simple_d, static_cast<void*>(lse_d),
                      static_cast<void*>(lse2_d), static_cast<void*>(lse_simple_d)}) {
        cudaFree(ptr);
    }
}

// Every tile boundary of the 64-row query and key tiles: T = 1, T < 64, T = 63, 64, 65, 100 (not a
// multiple), windows below T and at the tile size +-1, edge holes and left padding (a whole masked
// key tile at pad 70), GQA ratios 1 and 4 (one or two query heads per forward/dq block), several kv
// heads with blocks of two heads each (H 8, KVH 2: head pairs 0-1 .. 6-7 on kv heads 0, 0, 1, 1),
// both head dims.
void check_attention_mma_shapes() {
    check_attention_mma(1, 70, 8, 2, 64, 0, 1);
    for (int D : {64, 128}) {
        check_attention_mma(1, 1, 2, 2, D, 0, 0);
        check_attention_mma(2, 5, 4, 1, D, 0, 1);
        check_attention_mma(2, 63, 2, 2, D, 0, 1);
        check_attention_mma(2, 64, 4, 1, D, 0, 2, 10);
        check_attention_mma(2, 65, 2, 2, D, 64, 1);
        check_attention_mma(2, 100, 4, 1, D, 0, 2, 70);
        check_attention_mma(1, 100, 2, 2, D, 63, 1);
        check_attention_mma(1, 100, 4, 1, D, 65, 2, 3);
        check_attention_mma(1, 100, 2, 2, D, 5, 0);
    }
}

// Runs the cached forward: mode -1 the simple kernel, 0 the fast one with the split rule, n > 0
// the fast one forced to n splits (with the scratch that needs).
int run_cached(int mode, int dtype, void* out, const void* q, const void* k, const void* v, const int32_t* table,
               const int32_t* seqs, const int32_t* positions, int M, int H, int KVH, int D, int R, int S, int maxBlocks,
               int blockSize, int window) {
    if (mode < 0) {
        return spin_attention_cached_forward_simple(nullptr, dtype, out, q, k, v, table, seqs, positions, M, H, KVH, D,
                                                    R, S, maxBlocks, blockSize, window);
    }
    size_t bytes = 0;
    must(spin_attention_cached_forward_scratch_bytes(M, H, KVH, D, maxBlocks, blockSize, window, mode, &bytes),
         "spin_attention_cached_forward_scratch_bytes");
    void* scratch = nullptr;
    if (bytes > 0) scratch = device_poisoned<float>(bytes / sizeof(float));
    const int status = spin_attention_cached_forward(nullptr, dtype, out, q, k, v, table, seqs, positions, M, H, KVH,
                                                     D, R, S, maxBlocks, blockSize, window, mode, scratch);
    must(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    if (scratch) cudaFree(scratch);
    return status;
}

const char* mode_name(int mode) {
    static char text[32];
    if (mode < 0) return "simple";
    if (mode == 0) return "fast (split rule)";
    std::snprintf(text, sizeof text, "fast, %d splits", mode);
    return text;
}

// fp64 reference of the cached forward for the valid tokens (0 for the others).
std::vector<double> cached_reference(const std::vector<float>& q, const std::vector<float>& k_cache,
                                     const std::vector<float>& v_cache, const std::vector<int32_t>& table,
                                     const std::vector<int32_t>& seqs, const std::vector<int32_t>& positions,
                                     const std::vector<char>& valid, int H, int KVH, int D, int maxBlocks,
                                     int blockSize, int window) {
    const int M = static_cast<int>(seqs.size()), group = H / KVH;
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
    return expected;
}

// Two sequences of 13 and 7 cached positions in blocks of 4, their blocks out of order among 8
// physical blocks (1 and 4 unused, holding values that must not be read); the queries include
// several of one sequence (prefill-style), first positions, and two a caller's bug would make:
// a sequence outside the table and a position whose block has no entry (-1). Those give NaN.
void check_cached(int mode, int dtype, int D, int window) {
    const int H = 4, KVH = 2, S = 2, maxBlocks = 4, blockSize = 4, R = 8 * blockSize;
    const std::vector<int32_t> table = {5, 2, 7, 0, 3, 6, -1, -1};
    const std::vector<int32_t> seqs = {0, 1, 0, 1, 0, 1, 0, 2, 1};
    const std::vector<int32_t> positions = {12, 6, 5, 0, 0, 3, 9, 0, 9};
    const std::vector<char> valid = {1, 1, 1, 1, 1, 1, 1, 0, 0};
    const int M = static_cast<int>(seqs.size());
    const std::vector<float> q = representable(random_floats(static_cast<size_t>(M) * H * D, 2.0f), dtype);
    const std::vector<float> k_cache = representable(random_floats(static_cast<size_t>(R) * KVH * D), dtype);
    const std::vector<float> v_cache = representable(random_floats(static_cast<size_t>(R) * KVH * D), dtype);

    const std::vector<double> expected = cached_reference(q, k_cache, v_cache, table, seqs, positions, valid, H, KVH, D,
                                                          maxBlocks, blockSize, window);

    void* q_d = device_typed(q, dtype);
    void* k_d = device_typed(k_cache, dtype);
    void* v_d = device_typed(v_cache, dtype);
    int32_t* table_d = device_copy(table);
    int32_t* seqs_d = device_copy(seqs);
    int32_t* positions_d = device_copy(positions);
    void* out_d = device_poisoned_typed(q.size(), dtype);
    // Poisoned with 0 rather than NaN, so that the NaN the bad tokens must get is the kernel's.
    must(cudaMemset(out_d, 0, q.size() * dtype_bytes(dtype)), "cudaMemset");
    must(run_cached(mode, dtype, out_d, q_d, k_d, v_d, table_d, seqs_d, positions_d, M, H, KVH, D, R, S, maxBlocks,
                    blockSize, window),
         "spin_attention_cached_forward");
    std::vector<float> out = host_typed(out_d, q.size(), dtype);
    size_t bad_not_nan = 0;
    for (int m = 0; m < M; ++m) {
        if (valid[m]) continue;
        for (size_t e = static_cast<size_t>(m) * H * D; e < static_cast<size_t>(m + 1) * H * D; ++e) {
            bad_not_nan += !std::isnan(out[e]);
            out[e] = 0.0f;  // expected holds 0 there
        }
    }
    const char* const measure = dtype == SPIN_DTYPE_F32 ? ": worst ratio" : ": relative error";
    std::string measured = measure;
    const bool ok = output_ok(dtype, expected, out, 1e-5, 1e-5, 2, "out", measured);
    report(ok && bad_not_nan == 0,
           "spin_attention_cached_forward %s %s M=%d H=%d KVH=%d D=%d window=%d blockSize=%d%s, %zu bad-token "
           "elements not NaN",
           mode_name(mode), dtype_name(dtype), M, H, KVH, D, window, blockSize, measured.c_str(), bad_not_nan);

    // Poisoned (NaN) this time: every element of the valid tokens must be written.
    void* out2_d = device_poisoned_typed(q.size(), dtype);
    must(run_cached(mode, dtype, out2_d, q_d, k_d, v_d, table_d, seqs_d, positions_d, M, H, KVH, D, R, S, maxBlocks,
                    blockSize, window),
         "spin_attention_cached_forward");
    std::vector<float> out2 = host_typed(out2_d, q.size(), dtype);
    for (int m = 0; m < M; ++m) {
        if (!valid[m]) std::fill(out2.begin() + static_cast<size_t>(m) * H * D, out2.begin() + static_cast<size_t>(m + 1) * H * D, 0.0f);
    }
    std::string measured2 = measure;
    const bool ok2 = output_ok(dtype, expected, out2, 1e-5, 1e-5, 2, "out", measured2);
    report(ok2, "spin_attention_cached_forward %s %s D=%d window=%d into poisoned output%s", mode_name(mode),
           dtype_name(dtype), D, window, measured2.c_str());
    for (void* ptr : {q_d, k_d, v_d, static_cast<void*>(table_d), static_cast<void*>(seqs_d),
                      static_cast<void*>(positions_d), out_d, out2_d}) {
        cudaFree(ptr);
    }
}

// The decode kernel's own shapes: three sequences of different lengths (one position, an exact
// number of blocks, and a long one) in physical blocks shuffled over the cache, queried at their
// last positions (decode), at block edges and in a run of consecutive positions (a prefill chunk);
// GQA 1 and 4; every split count in `modes` (0: the rule, which on the emulator's one SM never
// splits), each held to the fp64 reference; and one split count run twice, bit for bit.
void check_decode(int dtype, int H, int KVH, int D, int blockSize, int window, std::initializer_list<int> modes) {
    const std::vector<int> lengths = {1, 3 * blockSize, 5 * blockSize + 3};
    const int S = static_cast<int>(lengths.size()), maxBlocks = 6;
    const int physical = S * maxBlocks + 2, R = physical * blockSize;
    std::vector<int32_t> order(physical);
    for (int i = 0; i < physical; ++i) order[i] = (i * 7 + 3) % physical;  // 7 is prime to 20
    std::vector<int32_t> table(static_cast<size_t>(S) * maxBlocks, -1);
    int next = 0;
    for (int seq = 0; seq < S; ++seq) {
        for (int blk = 0; blk * blockSize < lengths[seq]; ++blk) table[seq * maxBlocks + blk] = order[next++];
    }
    std::vector<int32_t> seqs, positions;
    for (int seq = 0; seq < S; ++seq) {
        const int len = lengths[seq];
        for (int p : {len - 1, 0, blockSize - 1, blockSize, 2 * blockSize - 1, 2 * blockSize}) {
            if (p >= 0 && p < len) {
                seqs.push_back(seq);
                positions.push_back(p);
            }
        }
    }
    for (int p = lengths[2] - 6; p < lengths[2]; ++p) {  // a prefill chunk of the long sequence
        seqs.push_back(2);
        positions.push_back(p);
    }
    const int M = static_cast<int>(seqs.size());
    const std::vector<char> valid(M, 1);
    const std::vector<float> q = representable(random_floats(static_cast<size_t>(M) * H * D, 2.0f), dtype);
    const std::vector<float> k_cache = representable(random_floats(static_cast<size_t>(R) * KVH * D), dtype);
    const std::vector<float> v_cache = representable(random_floats(static_cast<size_t>(R) * KVH * D), dtype);
    const std::vector<double> expected = cached_reference(q, k_cache, v_cache, table, seqs, positions, valid, H, KVH, D,
                                                          maxBlocks, blockSize, window);
    void* q_d = device_typed(q, dtype);
    void* k_d = device_typed(k_cache, dtype);
    void* v_d = device_typed(v_cache, dtype);
    int32_t* table_d = device_copy(table);
    int32_t* seqs_d = device_copy(seqs);
    int32_t* positions_d = device_copy(positions);
    const size_t bytes = q.size() * dtype_bytes(dtype);
    void* out_d = device_poisoned_typed(q.size(), dtype);
    std::vector<unsigned char> first_bits(bytes), second_bits(bytes);
    for (int mode : modes) {
        must(run_cached(mode, dtype, out_d, q_d, k_d, v_d, table_d, seqs_d, positions_d, M, H, KVH, D, R, S, maxBlocks,
                        blockSize, window),
             "spin_attention_cached_forward");
        std::string measured = dtype == SPIN_DTYPE_F32 ? ": worst ratio" : ": relative error";
        const bool ok = output_ok(dtype, expected, host_typed(out_d, q.size(), dtype), 1e-5, 1e-5, 2, "out", measured);
        report(ok, "decode %s %s M=%d H=%d KVH=%d D=%d blockSize=%d window=%d%s", mode_name(mode), dtype_name(dtype), M,
               H, KVH, D, blockSize, window, measured.c_str());
    }
    for (auto* bits : {&first_bits, &second_bits}) {
        must(cudaMemset(out_d, 0, bytes), "cudaMemset");
        must(run_cached(3, dtype, out_d, q_d, k_d, v_d, table_d, seqs_d, positions_d, M, H, KVH, D, R, S, maxBlocks,
                        blockSize, window),
             "spin_attention_cached_forward");
        must(cudaMemcpy(bits->data(), out_d, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
    }
    report(first_bits == second_bits, "decode %s H=%d KVH=%d D=%d blockSize=%d window=%d: 3 splits twice, bit-identical",
           dtype_name(dtype), H, KVH, D, blockSize, window);
    for (void* ptr : {q_d, k_d, v_d, static_cast<void*>(table_d), static_cast<void*>(seqs_d),
                      static_cast<void*>(positions_d), out_d}) {
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
    const int bad = SPIN_ERR_INVALID_ARG, f32 = SPIN_DTYPE_F32, unknown = 2;
    expect_status(spin_attention_forward(nullptr, f32, f, f, f, f, f, i, 1, 2, 3, 2, 8, 0), bad, "forward H=3 KVH=2");
    expect_status(spin_attention_forward(nullptr, f32, f, f, f, f, f, i, 1, 2, 2, 0, 8, 0), bad, "forward KVH=0");
    expect_status(spin_attention_forward(nullptr, f32, f, f, f, f, f, i, 1, 2, 2, 1, 7, 0), bad, "forward D=7");
    expect_status(spin_attention_forward(nullptr, f32, f, f, f, f, f, i, 1, 2, 2, 1, 258, 0), bad, "forward D=258");
    expect_status(spin_attention_forward(nullptr, f32, f, f, f, f, f, i, -1, 2, 2, 1, 8, 0), bad, "forward B=-1");
    expect_status(spin_attention_forward(nullptr, f32, f, f, f, f, f, i, 1, 2, 2, 1, 8, -1), bad, "forward window=-1");
    expect_status(spin_attention_forward(nullptr, f32, nullptr, f, f, f, f, i, 1, 2, 2, 1, 8, 0), bad,
                  "forward NULL out");
    expect_status(spin_attention_forward(nullptr, f32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 2, 2, 1,
                                         8, 0),
                  SPIN_OK, "forward B=0 with NULL tensors");
    expect_status(spin_attention_backward(nullptr, f32, f, f, f, nullptr, f, f, f, f, i, f, f, 1, 2, 2, 1, 8, 0), bad,
                  "backward NULL scratch");
    expect_status(spin_attention_backward(nullptr, f32, f, f, f, f, f, f, f, f, i, f, f, 1, 2, 4, 3, 8, 0), bad,
                  "backward H=4 KVH=3");
    expect_status(spin_attention_backward(nullptr, f32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, 2, 0, 2, 1, 8, 0),
                  SPIN_OK, "backward T=0 with NULL tensors");
    size_t bytes = 0;
    expect_status(spin_attention_backward_scratch_bytes(2, 5, 3, &bytes), SPIN_OK, "backward scratch bytes");
    report(bytes == 2 * 5 * 3 * sizeof(float), "backward scratch for B=2 T=5 H=3: %zu bytes (expected %zu)", bytes,
           2 * 5 * 3 * sizeof(float));
    expect_status(spin_attention_backward_scratch_bytes(2, -5, 3, &bytes), bad, "backward scratch bytes T=-5");
    expect_status(spin_attention_cached_forward(nullptr, f32, f, f, f, f, i, i, i, 1, 2, 1, 8, 4, 1, 1, 0, 0, 0, nullptr), bad,
                  "cached blockSize=0");
    expect_status(spin_attention_cached_forward(nullptr, f32, f, f, f, f, i, i, i, 1, 2, 1, 9, 4, 1, 1, 4, 0, 0, nullptr), bad,
                  "cached D=9");
    expect_status(spin_attention_cached_forward(nullptr, f32, f, f, f, f, nullptr, i, i, 1, 2, 1, 8, 4, 1, 1, 4, 0, 0,
                                                nullptr),
                  bad, "cached NULL blockTable");
    expect_status(spin_attention_cached_forward(nullptr, f32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                                nullptr, 0, 2, 1, 8, 0, 1, 1, 4, 0, 0, nullptr),
                  SPIN_OK, "cached M=0 with NULL tensors");
    expect_status(spin_attention_forward(nullptr, unknown, f, f, f, f, f, i, 1, 2, 2, 1, 8, 0), bad, "forward dtype 2");
    expect_status(spin_attention_backward(nullptr, unknown, f, f, f, f, f, f, f, f, i, f, f, 1, 2, 2, 1, 8, 0), bad,
                  "backward dtype 2");
    expect_status(spin_attention_cached_forward(nullptr, unknown, f, f, f, f, i, i, i, 1, 2, 1, 8, 4, 1, 1, 4, 0, 0, nullptr),
                  bad, "cached dtype 2");
    expect_status(spin_attention_cached_forward(nullptr, f32, f, f, f, f, i, i, i, 1, 2, 1, 8, 4, 1, 1, 4, 0, 2, nullptr),
                  bad, "cached 2 splits without scratch");
    expect_status(spin_attention_cached_forward(nullptr, f32, f, f, f, f, i, i, i, 1, 2, 1, 8, 4, 1, 1, 4, 0, -1, f), bad,
                  "cached splits=-1");
    expect_status(spin_attention_cached_forward_scratch_bytes(3, 8, 2, 128, 4, 16, 0, 5, &bytes), SPIN_OK,
                  "cached scratch bytes");
    report(bytes == 3 * 8 * 5 * (2 + 128) * sizeof(float), "cached scratch for M=3 H=8 D=128, 5 splits: %zu bytes",
           bytes);
    expect_status(spin_attention_cached_forward_scratch_bytes(3, 8, 2, 128, 4, 16, 0, 1, &bytes), SPIN_OK,
                  "cached scratch bytes, 1 split");
    report(bytes == 0, "cached scratch for 1 split: %zu bytes", bytes);
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
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) {
        for (int T : {1, 5, 37, 70}) {
            for (const auto& hk : heads) {
                for (int D : {8, 24, 64}) {
                    for (int window : {0, 3}) check_attention(dtype, {2, T, hk[0], hk[1], D, window}, T >= 37);
                }
            }
        }
        check_attention(dtype, {2, 70, 4, 2, 24, 40}, true);
        check_attention(dtype, {2, 70, 2, 2, 8, 100}, false);
        check_attention(dtype, {2, 37, 2, 1, 256, 0}, true);
        check_attention(dtype, {2, 37, 2, 1, 256, 20}, false);
        for (int D : {8, 24, 64, 256}) {
            for (int window : {0, 3, 6}) {
                for (int mode : {-1, 0, 2}) check_cached(mode, dtype, D, window);
            }
        }
        for (int blockSize : {16, 5}) {
            for (int window : {0, 19}) {
                check_decode(dtype, 8, 2, 128, blockSize, window, {0, 1, 2, 5, 64});
                check_decode(dtype, 2, 2, 64, blockSize, window, {0, 3});
            }
        }
        check_decode(dtype, 4, 1, 6, 16, 0, {0, 4});
        check_decode(dtype, 4, 1, 256, 16, 7, {0, 2});
    }
    check_attention_mma_shapes();
    check_arguments();
}
