// spin_rope_forward/backward (kernels/rope.cu), two ways per shape and dtype (and the fused q/k/v
// split entry points bit for bit against them):
//   - against an fp64 rotation (cos, sin and products in double): per element, by worst_ratio
//     (in bf16 widened by the rounding of the result), and by DESIGN section 4's L2 rule;
//   - bit for bit against the fp32 arithmetic of CpuBackend.rotateHead, which Java's CUDA and CPU
//     backends must share (in bf16: that fp32 result rounded once to bf16).
// Both take the angle as the contract defines it, rounded to fp32 at Rope.java's steps (the fp32
// angle of a position near 32K is off the exact one by up to 2e-3 rad, far beyond any tolerance,
// so a kernel that rounds elsewhere fails here).
#include <cmath>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

struct Shape {
    int B, T, H, D;
};

float contract_angle(int position, int i, int D, float theta) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(D);
    const double power = std::pow(static_cast<double>(theta), static_cast<double>(exponent));
    const float inv_freq = 1.0f / static_cast<float>(power);
    return static_cast<float>(position) * inv_freq;
}

// out (fp64) and out_cpu (the CPU backend's fp32 bits) of rotating x by direction * angle.
void reference(const Shape& s, const std::vector<float>& x, const std::vector<int32_t>& positions, float theta,
               float direction, std::vector<double>* out, std::vector<float>* out_cpu) {
    const int half = s.D / 2;
    out->assign(x.size(), 0.0);
    out_cpu->assign(x.size(), 0.0f);
    for (int bt = 0; bt < s.B * s.T; ++bt) {
        for (int i = 0; i < half; ++i) {
            const float angle = contract_angle(positions[bt], i, s.D, theta);
            const double c = std::cos(static_cast<double>(angle));
            const double sn = direction * std::sin(static_cast<double>(angle));
            const float cf = static_cast<float>(c);
            const float sf = direction * static_cast<float>(std::sin(static_cast<double>(angle)));
            for (int h = 0; h < s.H; ++h) {
                const size_t first = (static_cast<size_t>(bt) * s.H + h) * s.D + i;
                const float x1 = x[first], x2 = x[first + half];
                (*out)[first] = x1 * c - x2 * sn;
                (*out)[first + half] = x2 * c + x1 * sn;
                // volatile: each product rounded to fp32 on its own, never fused, as in Java.
                volatile float p1 = x1 * cf, p2 = x2 * sf, p3 = x2 * cf, p4 = x1 * sf;
                (*out_cpu)[first] = p1 - p2;
                (*out_cpu)[first + half] = p3 + p4;
            }
        }
    }
}

size_t wrong_bits(const std::vector<float>& expected, const std::vector<float>& actual) {
    size_t wrong = 0;
    for (size_t i = 0; i < expected.size(); ++i) wrong += std::memcmp(&expected[i], &actual[i], sizeof(float)) != 0;
    return wrong;
}

std::vector<int32_t> random_positions(int count, int max_position) {
    std::vector<int32_t> positions(count);
    for (int32_t& p : positions) p = static_cast<int32_t>((uniform() * 0.5f + 0.5f) * max_position);
    positions[0] = 0;
    positions[count - 1] = max_position;
    return positions;
}

// Forward and backward at one shape; in_place passes out == in (and dIn == dOut).
void check_rope(int dtype, const char* what, const Shape& s, const std::vector<int32_t>& positions, float theta,
                bool in_place) {
    const size_t count = static_cast<size_t>(s.B) * s.T * s.H * s.D;
    const std::vector<float> in = representable(random_floats(count, 2.0f), dtype);
    const std::vector<float> d_out = representable(random_floats(count, 2.0f), dtype);
    std::vector<double> out_ref, d_in_ref;
    std::vector<float> out_cpu, d_in_cpu;
    reference(s, in, positions, theta, 1.0f, &out_ref, &out_cpu);
    reference(s, d_out, positions, theta, -1.0f, &d_in_ref, &d_in_cpu);

    void* in_d = device_typed(in, dtype);
    void* d_out_d = device_typed(d_out, dtype);
    int32_t* positions_d = device_copy(positions);
    void* out_d = in_place ? in_d : device_poisoned_typed(count, dtype);
    void* d_in_d = in_place ? d_out_d : device_poisoned_typed(count, dtype);
    must(spin_rope_forward(nullptr, dtype, out_d, in_d, positions_d, s.B, s.T, s.H, s.D, theta), "spin_rope_forward");
    must(spin_rope_backward(nullptr, dtype, d_in_d, d_out_d, positions_d, s.B, s.T, s.H, s.D, theta),
         "spin_rope_backward");
    const std::vector<float> out = host_typed(out_d, count, dtype), d_in = host_typed(d_in_d, count, dtype);
    // fp32 cos/sin and two rounded products: a few 1e-8 relative; atol covers cancellation to ~0.
    // A bf16 result adds its one rounding, per element and by DESIGN section 4's L2 rule.
    const double rtol = 1e-5 + rounding_rtol(dtype);
    const double out_error = relative_error(out_ref, out), d_in_error = relative_error(d_in_ref, d_in);
    const bool close = worst_ratio(out_ref, out, 2e-6, rtol) <= 1 && worst_ratio(d_in_ref, d_in, 2e-6, rtol) <= 1 &&
                       within_dtype_tolerance(out_error, out_ref, dtype, 1e-6, 2) &&
                       within_dtype_tolerance(d_in_error, d_in_ref, dtype, 1e-6, 3);
    const size_t out_wrong = wrong_bits(representable(out_cpu, dtype), out);
    const size_t d_in_wrong = wrong_bits(representable(d_in_cpu, dtype), d_in);
    report(close && out_wrong == 0 && d_in_wrong == 0,
           "spin_rope_forward/backward %s %s B=%d T=%d H=%d D=%d theta=%g%s: relative errors out %.1e dIn %.1e; "
           "bits unlike the CPU's fp32 out %zu dIn %zu",
           dtype_name(dtype), what, s.B, s.T, s.H, s.D, theta, in_place ? " in place" : "", out_error, d_in_error,
           out_wrong, d_in_wrong);
    cudaFree(in_d);
    cudaFree(d_out_d);
    cudaFree(positions_d);
    if (!in_place) {
        cudaFree(out_d);
        cudaFree(d_in_d);
    }
}

// Row r of the [rows, heads * D] tensor `dense` is columns [at, at + heads * D) of row r of the
// [rows, width] tensor `stacked`: copies one way or the other.
void split_part(const std::vector<float>& stacked, int width, int at, int heads, int D, std::vector<float>* dense) {
    const size_t rows = stacked.size() / width, part = static_cast<size_t>(heads) * D;
    dense->assign(rows * part, 0.0f);
    for (size_t r = 0; r < rows; ++r) std::memcpy(&(*dense)[r * part], &stacked[r * width + at], part * sizeof(float));
}

void merge_part(const std::vector<float>& dense, int width, int at, int heads, int D, std::vector<float>* stacked) {
    const size_t part = static_cast<size_t>(heads) * D, rows = stacked->size() / width;
    for (size_t r = 0; r < rows; ++r) std::memcpy(&(*stacked)[r * width + at], &dense[r * part], part * sizeof(float));
}

// spin_qkv_rope_forward/backward (RoPE fused with the stacked q/k/v split) bit for bit against
// their unfused twin: the parts split out (merged back) on the host and spin_rope_forward
// (spin_rope_backward) on q and on k; v copied exactly. The outputs start poisoned, so an element
// the fused launch skips fails.
void check_qkv_rope(int dtype, int B, int T, int H, int KVH, int D, const std::vector<int32_t>& positions, float theta) {
    const int width = (H + 2 * KVH) * D, rows = B * T;
    const size_t q_count = static_cast<size_t>(rows) * H * D, kv_count = static_cast<size_t>(rows) * KVH * D;
    const std::vector<float> qkv = representable(random_floats(static_cast<size_t>(rows) * width, 2.0f), dtype);
    int32_t* positions_d = device_copy(positions);
    // Forward: fused against split-then-rotate.
    std::vector<float> q, k, v;
    split_part(qkv, width, 0, H, D, &q);
    split_part(qkv, width, H * D, KVH, D, &k);
    split_part(qkv, width, (H + KVH) * D, KVH, D, &v);
    void* q_twin = device_typed(q, dtype);
    void* k_twin = device_typed(k, dtype);
    must(spin_rope_forward(nullptr, dtype, q_twin, q_twin, positions_d, B, T, H, D, theta), "spin_rope_forward");
    must(spin_rope_forward(nullptr, dtype, k_twin, k_twin, positions_d, B, T, KVH, D, theta), "spin_rope_forward");
    void* qkv_d = device_typed(qkv, dtype);
    void* q_d = device_poisoned_typed(q_count, dtype);
    void* k_d = device_poisoned_typed(kv_count, dtype);
    void* v_d = device_poisoned_typed(kv_count, dtype);
    must(spin_qkv_rope_forward(nullptr, dtype, q_d, k_d, v_d, qkv_d, positions_d, B, T, H, KVH, D, theta),
         "spin_qkv_rope_forward");
    const size_t forward_wrong = wrong_bits(host_typed(q_twin, q_count, dtype), host_typed(q_d, q_count, dtype)) +
                                 wrong_bits(host_typed(k_twin, kv_count, dtype), host_typed(k_d, kv_count, dtype)) +
                                 wrong_bits(v, host_typed(v_d, kv_count, dtype));
    // Backward: fused against rotate-back-then-merge, from independent gradients.
    const std::vector<float> dq = representable(random_floats(q_count, 2.0f), dtype);
    const std::vector<float> dk = representable(random_floats(kv_count, 2.0f), dtype);
    const std::vector<float> dv = representable(random_floats(kv_count, 2.0f), dtype);
    void* dq_d = device_typed(dq, dtype);
    void* dk_d = device_typed(dk, dtype);
    void* dv_d = device_typed(dv, dtype);
    void* dq_twin = device_poisoned_typed(q_count, dtype);
    void* dk_twin = device_poisoned_typed(kv_count, dtype);
    must(spin_rope_backward(nullptr, dtype, dq_twin, dq_d, positions_d, B, T, H, D, theta), "spin_rope_backward");
    must(spin_rope_backward(nullptr, dtype, dk_twin, dk_d, positions_d, B, T, KVH, D, theta), "spin_rope_backward");
    std::vector<float> expected(static_cast<size_t>(rows) * width, 0.0f);
    merge_part(host_typed(dq_twin, q_count, dtype), width, 0, H, D, &expected);
    merge_part(host_typed(dk_twin, kv_count, dtype), width, H * D, KVH, D, &expected);
    merge_part(dv, width, (H + KVH) * D, KVH, D, &expected);
    void* dqkv_d = device_poisoned_typed(expected.size(), dtype);
    must(spin_qkv_rope_backward(nullptr, dtype, dqkv_d, dq_d, dk_d, dv_d, positions_d, B, T, H, KVH, D, theta),
         "spin_qkv_rope_backward");
    const size_t backward_wrong = wrong_bits(expected, host_typed(dqkv_d, expected.size(), dtype));
    report(forward_wrong == 0 && backward_wrong == 0,
           "spin_qkv_rope_forward/backward %s B=%d T=%d H=%d KVH=%d D=%d: bits unlike the split and spin_rope_* "
           "forward %zu backward %zu",
           dtype_name(dtype), B, T, H, KVH, D, forward_wrong, backward_wrong);
    for (void* p : {q_twin, k_twin, qkv_d, q_d, k_d, v_d, dq_d, dk_d, dv_d, dq_twin, dk_twin, dqkv_d}) cudaFree(p);
    cudaFree(positions_d);
}

void check_arguments() {
    float* x_d = device_poisoned<float>(8);
    int32_t* p_d = device_poisoned<int32_t>(1);
    const int f32 = SPIN_DTYPE_F32, bf16 = SPIN_DTYPE_BF16;
    const bool ok = spin_rope_forward(nullptr, f32, x_d, x_d, p_d, 1, 1, 1, 3, 1e4f) == SPIN_ERR_INVALID_ARG &&
                    spin_rope_backward(nullptr, bf16, x_d, x_d, p_d, 1, -1, 1, 2, 1e4f) == SPIN_ERR_INVALID_ARG &&
                    spin_rope_forward(nullptr, bf16, x_d, nullptr, p_d, 1, 1, 1, 2, 1e4f) == SPIN_ERR_INVALID_ARG &&
                    spin_rope_backward(nullptr, 2, x_d, x_d, p_d, 1, 1, 1, 2, 1e4f) == SPIN_ERR_INVALID_ARG &&
                    spin_rope_forward(nullptr, f32, nullptr, nullptr, nullptr, 0, 4, 4, 8, 1e4f) == SPIN_OK &&
                    spin_rope_backward(nullptr, bf16, nullptr, nullptr, nullptr, 2, 4, 4, 0, 1e4f) == SPIN_OK &&
                    spin_qkv_rope_forward(nullptr, f32, x_d, x_d, nullptr, x_d, p_d, 1, 1, 1, 1, 2, 1e4f) ==
                        SPIN_ERR_INVALID_ARG &&
                    spin_qkv_rope_backward(nullptr, f32, x_d, x_d, x_d, x_d, p_d, 1, 1, 1, -1, 2, 1e4f) ==
                        SPIN_ERR_INVALID_ARG &&
                    spin_qkv_rope_backward(nullptr, f32, x_d, x_d, x_d, x_d, nullptr, 1, 1, 1, 1, 2, 1e4f) ==
                        SPIN_ERR_INVALID_ARG &&
                    spin_qkv_rope_forward(nullptr, bf16, nullptr, nullptr, nullptr, nullptr, nullptr, 3, 0, 4, 2, 8,
                                          1e4f) == SPIN_OK;
    report(ok, "spin_rope_* and spin_qkv_rope_* reject an odd D, negative sizes, NULL tensors and unknown dtypes; zero-sized calls do "
               "nothing");
    cudaFree(x_d);
    cudaFree(p_d);
}

}  // namespace

SPIN_KERNEL_CHECKS(rope) {
    std::vector<int32_t> small = random_positions(6, 100);
    small[2] = -7;  // not produced by the engine, but the formula holds for it as on the CPU
    const std::vector<int32_t> odd_half = random_positions(5, 4096);
    // GQA: queries with 8 heads and keys with 2 share the positions.
    const std::vector<int32_t> gqa = random_positions(8, 2000);
    const std::vector<int32_t> mistral = random_positions(9, 32767);
    const std::vector<int32_t> aliased = random_positions(10, 1000);
    const std::vector<int32_t> aliased_odd_half = random_positions(3, 30000);
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) {
        check_rope(dtype, "single pair", {1, 1, 1, 2}, {5}, 1e4f, false);
        check_rope(dtype, "small", {2, 3, 4, 6}, small, 1e4f, false);
        // 65 pairs per head, 195 per row: neither a multiple of the 128 threads.
        check_rope(dtype, "odd half", {1, 5, 3, 130}, odd_half, 1e6f, false);
        check_rope(dtype, "GQA queries", {2, 4, 8, 16}, gqa, 1e6f, false);
        check_rope(dtype, "GQA keys", {2, 4, 2, 16}, gqa, 1e6f, false);
        check_rope(dtype, "Mistral head", {1, 9, 4, 128}, mistral, 1e6f, false);
        check_rope(dtype, "aliased", {2, 5, 3, 64}, aliased, 1e6f, true);
        check_rope(dtype, "aliased odd half", {1, 3, 5, 130}, aliased_odd_half, 1e4f, true);
        check_qkv_rope(dtype, 2, 4, 8, 2, 16, gqa, 1e6f);
        check_qkv_rope(dtype, 1, 3, 5, 3, 130, aliased_odd_half, 1e4f);
        check_qkv_rope(dtype, 1, 3, 4, 0, 8, aliased_odd_half, 1e4f);
    }
    check_arguments();
}
