// spin_cast_f32_to_bf16 / bf16_to_f32 (kernels/cast.cu) bit for bit against a host rounding.
#include <cmath>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

void check_casts(size_t count) {
    const std::vector<float> in = random_floats(count, 100.0f);
    float* in_d = device_copy(in);
    uint16_t* bf16_d = device_poisoned<uint16_t>(count);
    float* back_d = device_poisoned<float>(count);
    must(spin_cast_f32_to_bf16(nullptr, bf16_d, in_d, count), "spin_cast_f32_to_bf16");
    must(spin_cast_bf16_to_f32(nullptr, back_d, bf16_d, count), "spin_cast_bf16_to_f32");
    const std::vector<uint16_t> bf16 = host_copy(bf16_d, count);
    const std::vector<float> back = host_copy(back_d, count);
    size_t wrong = 0;
    for (size_t i = 0; i < count; ++i) {
        if (bf16[i] != bf16_bits(in[i]) || back[i] != bf16_value(bf16[i])) ++wrong;
    }
    report(wrong == 0, "spin_cast_f32_to_bf16 / bf16_to_f32, %zu elements: %zu wrong", count, wrong);
    for (void* p : {static_cast<void*>(in_d), static_cast<void*>(bf16_d), static_cast<void*>(back_d)}) cudaFree(p);
}

}  // namespace

SPIN_KERNEL_CHECKS(cast) {
    for (size_t count : {size_t{1}, size_t{255}, size_t{257}, size_t{4099}}) check_casts(count);
}
