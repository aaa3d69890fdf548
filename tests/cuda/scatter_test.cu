// spin_scatter_rows (kernels/scatter.cu) byte for byte against in-order host copies: rows outside
// [0, R) skipped, a row named twice holding the later source row, every other row untouched; in
// both compute dtypes, whose elements it copies as raw bits (random bytes: any pattern, NaNs too).
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

std::vector<uint8_t> random_bytes(size_t count) {
    std::vector<uint8_t> bytes(count);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(static_cast<int>((uniform() + 1.0f) * 128.0f) & 0xff);
    return bytes;
}

// src_offset_elements > 0 starts src that many elements into its buffer, misaligning it for wide copies.
void check_scatter(const char* what, const std::vector<int32_t>& rows, int W, int R, int dtype,
                   int src_offset_elements = 0) {
    const int M = static_cast<int>(rows.size());
    const size_t element_bytes = dtype_bytes(dtype);
    const size_t row_bytes = static_cast<size_t>(W) * element_bytes;
    const size_t offset = static_cast<size_t>(src_offset_elements) * element_bytes;
    const std::vector<uint8_t> src = random_bytes(offset + M * row_bytes);
    const std::vector<uint8_t> dst_before = random_bytes(R * row_bytes);
    std::vector<uint8_t> expected = dst_before;
    for (int m = 0; m < M; ++m) {
        if (rows[m] < 0 || rows[m] >= R) continue;
        std::memcpy(&expected[rows[m] * row_bytes], &src[offset + m * row_bytes], row_bytes);
    }
    uint8_t* src_d = device_copy(src);
    uint8_t* dst_d = device_copy(dst_before);
    int32_t* rows_d = device_copy(rows);
    must(spin_scatter_rows(nullptr, dtype, dst_d, src_d + offset, rows_d, M, W, R), "spin_scatter_rows");
    const std::vector<uint8_t> dst = host_copy(dst_d, R * row_bytes);
    size_t wrong = 0;
    for (size_t i = 0; i < dst.size(); ++i) wrong += dst[i] != expected[i];
    report(wrong == 0, "spin_scatter_rows %s %s M=%d W=%d R=%d%s: %zu wrong bytes", dtype_name(dtype), what, M, W, R,
           src_offset_elements ? " (src misaligned)" : "", wrong);
    cudaFree(src_d);
    cudaFree(dst_d);
    cudaFree(rows_d);
}

void check_arguments() {
    float* x_d = device_poisoned<float>(4);
    int32_t* rows_d = device_copy(std::vector<int32_t>{0});
    const int f32 = SPIN_DTYPE_F32, bf16 = SPIN_DTYPE_BF16;
    const bool ok = spin_scatter_rows(nullptr, 2, x_d, x_d, rows_d, 1, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_scatter_rows(nullptr, 2, nullptr, nullptr, nullptr, 0, 4, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_scatter_rows(nullptr, f32, x_d, x_d, rows_d, 1, -1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_scatter_rows(nullptr, f32, x_d, nullptr, rows_d, 1, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_scatter_rows(nullptr, bf16, nullptr, nullptr, nullptr, 0, 4, 4) == SPIN_OK &&
                    spin_scatter_rows(nullptr, f32, nullptr, x_d, rows_d, 1, 4, 0) == SPIN_OK;
    report(ok, "spin_scatter_rows rejects unknown dtypes (even with nothing to copy), bad sizes and NULL tensors; "
               "zero-sized calls do nothing");
    cudaFree(x_d);
    cudaFree(rows_d);
}

}  // namespace

// A block handles 32 source rows: duplicates within one block and across blocks; row widths from 2
// to 1204 bytes and a misaligned source, so that every copy unit (16, 8, 4, 2 bytes) is used.
SPIN_KERNEL_CHECKS(scatter) {
    std::vector<int32_t> across(40);
    for (int m = 0; m < 40; ++m) across[m] = m % 37;  // rows 0..2 again in the second block
    across[9] = across[5];                             // and one named twice inside the first
    across[20] = 50;
    std::vector<int32_t> many(70);
    for (int32_t& r : many) r = static_cast<int32_t>((uniform() * 0.5f + 0.5f) * 90) - 5;
    const std::vector<int32_t> three = {2, 0, 1, 1, 2, 0, 0, 2, 1, 2, 0, 1, 1, 1, 2, 0, 2,
                                        0, 0, 1, 2, 2, 1, 0, 1, 2, 0, 0, 1, 2, 1, 2, 0};
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) {
        check_scatter("one row", {0}, 1, 1, dtype);
        check_scatter("out-of-range rows", {6, -1, 2, 7, 0}, 3, 7, dtype);
        check_scatter("out-of-range rows", {6, -1, 2, 7, 0}, 2, 7, dtype);
        check_scatter("duplicates", across, 8, 50, dtype);
        check_scatter("duplicates", across, 8, 50, dtype, 1);
        check_scatter("random rows", many, 300, 80, dtype);
        check_scatter("random rows", many, 301, 80, dtype);
        check_scatter("three rows", three, 1, 3, dtype);
    }
    check_arguments();
}
