// spin_embedding_forward/backward (kernels/embedding.cu), on fp32 and on bf16 activations:
//   - forward bit for bit (a copy of the table's elements), NaN rows for ids outside [0, V);
//   - backward (dTable fp32 in both cases) per element against an fp64 sum, bit for bit against the
//     CPU backend's order (each id's rows, widened to fp32, added one by one onto the old dTable row,
//     in increasing n), and bit-identical over two runs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

size_t wrong_bits(const std::vector<float>& expected, const std::vector<float>& actual) {
    size_t wrong = 0;
    for (size_t i = 0; i < expected.size(); ++i) wrong += std::memcmp(&expected[i], &actual[i], sizeof(float)) != 0;
    return wrong;
}

void check_embedding(int dtype, const char* what, const std::vector<int32_t>& ids, int C, int V) {
    const int N = static_cast<int>(ids.size());
    const std::vector<float> table = representable(random_floats(static_cast<size_t>(V) * C), dtype);
    const std::vector<float> d_out = representable(random_floats(static_cast<size_t>(N) * C), dtype);
    const std::vector<float> d_table_before = random_floats(static_cast<size_t>(V) * C);

    // Forward: rows of valid ids copied, the rest NaN.
    size_t forward_wrong = 0;
    int32_t* ids_d = device_copy(ids);
    void* table_d = device_typed(table, dtype);
    // Not the usual NaN poison: a NaN row must be the kernel's own, and a row it skips stays 7.
    void* out_d = device_typed(std::vector<float>(static_cast<size_t>(N) * C, 7.0f), dtype);
    must(spin_embedding_forward(nullptr, dtype, out_d, ids_d, table_d, N, C, V), "spin_embedding_forward");
    const std::vector<float> out = host_typed(out_d, static_cast<size_t>(N) * C, dtype);
    for (int n = 0; n < N; ++n) {
        const bool valid = ids[n] >= 0 && ids[n] < V;
        for (int c = 0; c < C; ++c) {
            const float got = out[static_cast<size_t>(n) * C + c];
            const bool right = valid ? std::memcmp(&got, &table[static_cast<size_t>(ids[n]) * C + c], 4) == 0
                                     : std::isnan(got);
            forward_wrong += !right;
        }
    }

    // Backward references: fp64 sums, and the CPU backend's fp32 order.
    std::vector<double> d_table_ref(d_table_before.begin(), d_table_before.end());
    std::vector<float> d_table_cpu = d_table_before;
    std::vector<int> rows_per_id(V, 0);
    for (int n = 0; n < N; ++n) {
        if (ids[n] < 0 || ids[n] >= V) continue;
        ++rows_per_id[ids[n]];
        for (int c = 0; c < C; ++c) {
            const size_t to = static_cast<size_t>(ids[n]) * C + c, from = static_cast<size_t>(n) * C + c;
            d_table_ref[to] += d_out[from];
            d_table_cpu[to] += d_out[from];
        }
    }
    const int most_rows = std::max(1, *std::max_element(rows_per_id.begin(), rows_per_id.end()));

    void* d_out_d = device_typed(d_out, dtype);
    std::vector<float> runs[2];
    for (std::vector<float>& run : runs) {
        float* d_table_d = device_copy(d_table_before);
        must(spin_embedding_backward(nullptr, dtype, d_table_d, ids_d, d_out_d, N, C, V), "spin_embedding_backward");
        run = host_copy(d_table_d, static_cast<size_t>(V) * C);
        cudaFree(d_table_d);
    }
    // k fp32 additions of terms below 1 onto partial sums of size ~sqrt(k): 1e-6 * k is well above
    // their rounding errors and far below any misplaced or missing row.
    const double ratio = worst_ratio(d_table_ref, runs[0], 1e-6 * most_rows, 1e-6);
    const size_t cpu_wrong = wrong_bits(d_table_cpu, runs[0]);
    const size_t rerun_wrong = wrong_bits(runs[0], runs[1]);
    report(forward_wrong == 0 && ratio <= 1 && cpu_wrong == 0 && rerun_wrong == 0,
           "spin_embedding_forward/backward %s %s N=%d C=%d V=%d: forward wrong %zu; dTable worst error / "
           "tolerance %.2f, bits unlike the CPU order %zu, unlike a second run %zu",
           dtype_name(dtype), what, N, C, V, forward_wrong, ratio, cpu_wrong, rerun_wrong);
    for (void* p : {static_cast<void*>(ids_d), table_d, out_d, d_out_d}) cudaFree(p);
}

void check_arguments() {
    float* x_d = device_poisoned<float>(4);
    int32_t* ids_d = device_copy(std::vector<int32_t>{0});
    const int f32 = SPIN_DTYPE_F32, bf16 = SPIN_DTYPE_BF16;
    const bool ok = spin_embedding_forward(nullptr, f32, x_d, ids_d, x_d, 1, -1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_embedding_forward(nullptr, bf16, x_d, nullptr, x_d, 1, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_embedding_forward(nullptr, 7, x_d, ids_d, x_d, 1, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_embedding_backward(nullptr, f32, nullptr, ids_d, x_d, 1, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_embedding_backward(nullptr, bf16, x_d, ids_d, x_d, -2, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_embedding_backward(nullptr, -1, x_d, ids_d, x_d, 1, 1, 1) == SPIN_ERR_INVALID_ARG &&
                    spin_embedding_forward(nullptr, f32, nullptr, nullptr, nullptr, 0, 4, 4) == SPIN_OK &&
                    spin_embedding_backward(nullptr, bf16, nullptr, nullptr, nullptr, 3, 0, 4) == SPIN_OK;
    report(ok, "spin_embedding_* reject negative sizes, NULL tensors and unknown dtypes; zero-sized calls do nothing");
    cudaFree(x_d);
    cudaFree(ids_d);
}

}  // namespace

// The backward's warps scan earlier ids 256 at a time and its blocks later ids 1024 at a time
// (256 threads x 4): the long cases put first and later occurrences on both sides of those
// boundaries, and give owners both full and partial groups of 8 rows to sum.
SPIN_KERNEL_CHECKS(embedding) {
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) {
        check_embedding(dtype, "one row", {0}, 1, 1);
        check_embedding(dtype, "repeated ids", {2, 0, 2, 2, 1, 0, 2}, 5, 3);
        check_embedding(dtype, "out-of-range ids", {1, -1, 3, 4, 1, 100000, -7, 3, 0}, 300, 4);
        check_embedding(dtype, "all ids equal", std::vector<int32_t>(1100, 2), 3, 5);
    }

    // 40 common ids; id 40 first at 1200 (its owner scans 1200 earlier ids without a match) and
    // again at 1250; id 41 once, past the first block-scan boundary; invalid ids around it.
    std::vector<int32_t> ids(1300);
    for (int32_t& id : ids) id = static_cast<int32_t>((uniform() * 0.5f + 0.5f) * 40) % 40;
    ids[1200] = 40;
    ids[1250] = 40;
    ids[1100] = 41;
    ids[1023] = -1;
    ids[1024] = 42;
    for (int dtype : {SPIN_DTYPE_F32, SPIN_DTYPE_BF16}) check_embedding(dtype, "chunk boundaries", ids, 33, 42);
    check_arguments();
}
