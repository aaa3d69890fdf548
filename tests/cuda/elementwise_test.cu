// spin_add / spin_scale / spin_scale_by_device / spin_fill (kernels/elementwise.cu). Each fp32 result
// is one fp32 operation on fp32 inputs, whose fp64 value rounded once to fp32 is the correctly rounded
// result, so the checks are bit for bit against that; a bf16 sum is that fp32 result rounded once to
// bf16 (to nearest even), bit for bit too.
#include <cmath>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

// The fp64 values rounded to fp32 and then, for bf16, once more to bf16: the bits spin_add must give.
std::vector<float> expected_typed(const std::vector<double>& expected, int dtype) {
    std::vector<float> values(expected.size());
    for (size_t i = 0; i < expected.size(); ++i) values[i] = static_cast<float>(expected[i]);
    return representable(values, dtype);
}

size_t wrong_bits(const std::vector<float>& expected, const std::vector<float>& actual) {
    size_t wrong = 0;
    for (size_t i = 0; i < expected.size(); ++i) wrong += std::memcmp(&expected[i], &actual[i], sizeof(float)) != 0;
    return wrong;
}

void check_add(int dtype, size_t count) {
    const std::vector<float> a = representable(random_floats(count, 10.0f), dtype);
    const std::vector<float> b = representable(random_floats(count, 0.1f), dtype);
    std::vector<double> sums(count);
    for (size_t i = 0; i < count; ++i) sums[i] = static_cast<double>(a[i]) + b[i];
    const std::vector<float> expected = expected_typed(sums, dtype);

    void* a_d = device_typed(a, dtype);
    void* b_d = device_typed(b, dtype);
    void* out_d = device_poisoned_typed(count, dtype);
    must(spin_add(nullptr, dtype, out_d, a_d, b_d, count), "spin_add");
    const size_t separate = wrong_bits(expected, host_typed(out_d, count, dtype));
    must(spin_add(nullptr, dtype, a_d, a_d, b_d, count), "spin_add");  // out == a: dst += src
    const size_t alias_a = wrong_bits(expected, host_typed(a_d, count, dtype));
    cudaFree(a_d);
    a_d = device_typed(a, dtype);
    must(spin_add(nullptr, dtype, b_d, a_d, b_d, count), "spin_add");  // out == b
    const size_t alias_b = wrong_bits(expected, host_typed(b_d, count, dtype));
    report(separate == 0 && alias_a == 0 && alias_b == 0,
           "spin_add %s count=%zu: wrong bits %zu (out separate), %zu (out == a), %zu (out == b)", dtype_name(dtype),
           count, separate, alias_a, alias_b);
    for (void* p : {a_d, b_d, out_d}) cudaFree(p);
}

void check_scale(size_t count) {
    const std::vector<float> x = random_floats(count, 100.0f);
    const float factor = -0.3712f;
    std::vector<double> expected(count);
    for (size_t i = 0; i < count; ++i) expected[i] = static_cast<double>(x[i]) * factor;

    float* x_d = device_copy(x);
    must(spin_scale(nullptr, x_d, factor, count), "spin_scale");
    const size_t by_host = wrong_bits(expected_typed(expected, SPIN_DTYPE_F32), host_copy(x_d, count));
    cudaMemcpy(x_d, x.data(), count * sizeof(float), cudaMemcpyHostToDevice);
    float* factor_d = device_copy(std::vector<float>{factor});
    must(spin_scale_by_device(nullptr, x_d, factor_d, count), "spin_scale_by_device");
    const size_t by_device = wrong_bits(expected_typed(expected, SPIN_DTYPE_F32), host_copy(x_d, count));
    report(by_host == 0 && by_device == 0, "spin_scale / spin_scale_by_device count=%zu: wrong bits %zu / %zu", count,
           by_host, by_device);
    cudaFree(x_d);
    cudaFree(factor_d);
}

void check_fill(size_t count) {
    const float value = 1.0f / 3.0f;
    float* dst_d = device_poisoned<float>(count);
    must(spin_fill(nullptr, dst_d, value, count), "spin_fill");
    const size_t wrong = wrong_bits(std::vector<float>(count, value), host_copy(dst_d, count));
    report(wrong == 0, "spin_fill count=%zu: wrong bits %zu", count, wrong);
    cudaFree(dst_d);
}

void check_arguments() {
    float* x_d = device_poisoned<float>(4);
    const bool null_rejected = spin_add(nullptr, SPIN_DTYPE_F32, x_d, nullptr, x_d, 4) == SPIN_ERR_INVALID_ARG &&
                               spin_scale(nullptr, nullptr, 2.0f, 4) == SPIN_ERR_INVALID_ARG &&
                               spin_scale_by_device(nullptr, x_d, nullptr, 4) == SPIN_ERR_INVALID_ARG &&
                               spin_fill(nullptr, nullptr, 0.0f, 4) == SPIN_ERR_INVALID_ARG;
    const bool dtype_rejected = spin_add(nullptr, 2, x_d, x_d, x_d, 4) == SPIN_ERR_INVALID_ARG;
    const bool empty_ok = spin_add(nullptr, SPIN_DTYPE_BF16, nullptr, nullptr, nullptr, 0) == SPIN_OK &&
                          spin_scale(nullptr, nullptr, 2.0f, 0) == SPIN_OK &&
                          spin_scale_by_device(nullptr, nullptr, nullptr, 0) == SPIN_OK &&
                          spin_fill(nullptr, nullptr, 0.0f, 0) == SPIN_OK;
    report(null_rejected && dtype_rejected && empty_ok,
           "element-wise ops reject NULL tensors and an unknown dtype, and do nothing for count 0");
    cudaFree(x_d);
}

}  // namespace

// Counts of one element, one short of, exactly and one past the 256-thread block, and many blocks.
SPIN_KERNEL_CHECKS(elementwise) {
    for (size_t count : {size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{4099}}) {
        for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) check_add(dtype, count);
        check_scale(count);
        check_fill(count);
    }
    check_arguments();
}
