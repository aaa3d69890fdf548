// Native kernel tests, built twice: by the host compiler against the CUDA emulator (as
// spin_emu_tests, under AddressSanitizer where available) and by nvcc (as spin_kernel_tests, for
// a GPU). Without arguments it runs every check and exits 0 when all pass:
//   - every product kernel through the C ABI (spin_native.h) at edge shapes against host
//     references, so that ASan sees each kernel's accesses at the shapes most likely to overrun;
//   - the PTX wrappers (kernels/ptx.cuh): cp.async -> ldmatrix -> mma.sync against a naive
//     product, by three routes to the fragments; warp shuffles, votes and atomics;
//   - emulator only: that the planted faults below make their checks fail, and that deadlocks,
//     bad configurations and forgotten cp.async waits come back as launch errors.
// With one argument it runs one planted fault, for the tests that must see it fail:
//   planted-missing-sync   block sum without the __syncthreads between writing and reading shared
//                          memory: the check reports wrong sums (exit 1)
//   planted-missing-wait   cp.async data read before cp.async.wait: the check sees poison (exit 1)
//   planted-oob-global     a kernel writes one float past its buffer: ASan reports heap-buffer-overflow
//   planted-oob-shared     a kernel writes one float past a __shared__ array: ASan reports
//                          global-buffer-overflow (static shared memory is a global in the emulator)
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>

#include "internal.h"
#include "ptx.cuh"
#include "spin_native.h"
#include "harness.h"

using namespace spin_test;

namespace {

constexpr unsigned FULL = 0xffffffffu;
constexpr int SUM_BLOCK = 256;

// ---- test kernels (correct and planted) ---------------------------------------------------------------

// out[b] = sum of in[b * 256 .. b * 256 + 255]; with_barrier = false leaves out the barrier between
// the warps writing their sums and thread 0 reading them. (A flag rather than a template parameter:
// GCC ignores the section attribute on statics of function templates, so the emulator cannot
// poison a template's __shared__ arrays; see docs/ARCHITECTURE.md.)
__global__ void block_sum_kernel(float* out, const float* in, bool with_barrier) {
    __shared__ float warp_sums[SUM_BLOCK / 32];
    float value = in[blockIdx.x * SUM_BLOCK + threadIdx.x];
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(FULL, value, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = value;
    if (with_barrier) __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < SUM_BLOCK / 32; ++w) total += warp_sums[w];
        out[blockIdx.x] = total;
    }
}

// 64 threads stage 256 floats with 16-byte cp.async, then each reads a float another thread copied:
// out[b * 256 + i] = 2 * in[b * 256 + (i + 5) % 256] for i = 4t .. 4t + 3. with_wait = false waits
// only after the reads (so no copy is left pending at exit), i.e. reads data that has not landed.
__global__ void staged_copy_kernel(float* out, const float* in, bool with_wait) {
    __shared__ __align__(16) float tile[256];
    const int t = threadIdx.x;
    const float* source = in + blockIdx.x * 256;
    cp_async<16>(&tile[4 * t], &source[4 * t]);
    cp_async_commit();
    if (with_wait) cp_async_wait<0>();
    __syncthreads();
    for (int i = 4 * t; i < 4 * t + 4; ++i) out[blockIdx.x * 256 + i] = 2.0f * tile[(i + 5) % 256];
    if (!with_wait) cp_async_wait_all();
}

// One warp: D = A * B + C with A 16x16, B 16x8 (bf16), C 16x8 (fp32), three ways:
//   d_trans:  B stored [k][n] and loaded by ldmatrix.x2.trans;
//   d_plain:  B stored [n][k] (bt) and loaded by ldmatrix.x2;
//   d_direct: every fragment loaded from global memory by the PTX ISA's index formulas.
// A goes through cp.async and ldmatrix.x4 in the first two, with the addressing real GEMM
// kernels use (lane l: row l % 16, column 8 * (l / 16)).
__global__ void tile_mma_kernel(float* d_trans, float* d_plain, float* d_direct, const uint16_t* a,
                                const uint16_t* b, const uint16_t* bt, const float* c) {
    __shared__ __align__(16) uint16_t a_s[16 * 16];
    __shared__ __align__(16) uint16_t b_s[16 * 8];
    __shared__ __align__(16) uint16_t bt_s[8 * 16];
    const unsigned lane = threadIdx.x, group = lane >> 2, tig = lane % 4;
    // 512 bytes of A: one 16-byte chunk per lane; B and Bt: 16 chunks each.
    cp_async<16>(&a_s[lane * 8], &a[lane * 8]);
    if (lane < 16) {
        cp_async<16>(&b_s[lane * 8], &b[lane * 8]);
    } else {
        cp_async<16>(&bt_s[(lane - 16) * 8], &bt[(lane - 16) * 8]);
    }
    cp_async_wait_all();
    __syncthreads();

    float c_frag[4];
    for (int i = 0; i < 4; ++i) c_frag[i] = c[(group + (i >= 2 ? 8 : 0)) * 8 + tig * 2 + (i & 1)];
    uint32_t a_frag[4];
    ldmatrix<4>(a_frag, &a_s[(lane % 16) * 16 + (lane / 16) * 8]);

    uint32_t b_frag[2];
    float d[4];
    ldmatrix<2, true>(b_frag, &b_s[(lane % 16) * 8]);  // row k = lane of matrices k 0..7, 8..15
    mma_m16n8k16_bf16(d, a_frag, b_frag, c_frag);
    for (int i = 0; i < 4; ++i) d_trans[(group + (i >= 2 ? 8 : 0)) * 8 + tig * 2 + (i & 1)] = d[i];

    // Matrix j = k 8j .. 8j+7; its row r (n = r) starts at bt_s[r * 16 + 8 j], from lane 8 j + r.
    ldmatrix<2>(b_frag, &bt_s[(lane % 8) * 16 + ((lane / 8) % 2) * 8]);
    mma_m16n8k16_bf16(d, a_frag, b_frag, c_frag);
    for (int i = 0; i < 4; ++i) d_plain[(group + (i >= 2 ? 8 : 0)) * 8 + tig * 2 + (i & 1)] = d[i];

    // The PTX ISA's formulas, written out independently of the emulator's tables.
    for (int r = 0; r < 4; ++r) {
        const int row = group + ((r % 2) ? 8 : 0), col = tig * 2 + ((r >= 2) ? 8 : 0);
        a_frag[r] = static_cast<uint32_t>(a[row * 16 + col]) | static_cast<uint32_t>(a[row * 16 + col + 1]) << 16;
    }
    for (int r = 0; r < 2; ++r) {
        const int k = tig * 2 + (r ? 8 : 0);
        b_frag[r] = static_cast<uint32_t>(b[k * 8 + group]) | static_cast<uint32_t>(b[(k + 1) * 8 + group]) << 16;
    }
    mma_m16n8k16_bf16(d, a_frag, b_frag, c_frag);
    for (int i = 0; i < 4; ++i) d_direct[(group + (i >= 2 ? 8 : 0)) * 8 + tig * 2 + (i & 1)] = d[i];
}

constexpr int WARP_RESULTS = 6;
// Two warps per block; out[(block * 6 + k) * 64 + t] is result k of thread t; *counter counts threads.
__global__ void warp_ops_kernel(int* out, unsigned* counter) {
    const int t = threadIdx.x, lane = t % 32;
    int* mine = out + blockIdx.x * WARP_RESULTS * 64 + t;
    mine[0 * 64] = __shfl_xor_sync(FULL, t * 10, 5);
    mine[1 * 64] = __shfl_sync(FULL, t, 31 - lane);
    mine[2 * 64] = __shfl_up_sync(FULL, t, 3);
    mine[3 * 64] = __shfl_down_sync(FULL, t, 3, 16);
    mine[4 * 64] = static_cast<int>(__ballot_sync(FULL, lane % 3 == 0));
    // Two half-warps, each its own collective.
    mine[5 * 64] = __shfl_xor_sync(lane < 16 ? 0x0000ffffu : 0xffff0000u, t, 1);
    atomicAdd(counter, 1u);
}

__global__ void oob_global_kernel(float* out) { out[threadIdx.x] = 1.0f; }

__global__ void oob_shared_kernel(float* out) {
    __shared__ float staging[32];
    staging[threadIdx.x + 1] = 1.0f;  // thread 31 writes staging[32]
    __syncthreads();
    out[threadIdx.x] = staging[threadIdx.x];
}

#ifdef SPIN_CUDA_EMULATOR
// Lane 5 waits at the block barrier while the rest of its warp waits for it in __syncwarp.
__global__ void deadlock_kernel() {
    if (threadIdx.x == 5) {
        __syncthreads();
    } else {
        __syncwarp();
    }
}

__global__ void forgotten_wait_kernel(const float* in) {
    __shared__ __align__(16) float tile[4];
    if (threadIdx.x == 0) cp_async<16>(tile, in);
}

__global__ void nothing_kernel() {}

__global__ void big_dynamic_shared_kernel(float* out) {
    SPIN_DYNAMIC_SHARED(float, buffer);
    buffer[threadIdx.x] = 1.0f;
    out[threadIdx.x] = buffer[threadIdx.x];
}
#endif

// ---- checks -------------------------------------------------------------------------------------------

void launch_failed(const char* kernel) {
    const cudaError_t error = cudaGetLastError();
    if (error != cudaSuccess) {
        std::printf("FAIL %s launch: %s: %s\n", kernel, cudaGetErrorName(error), cudaGetErrorString(error));
        std::exit(1);
    }
}

bool check_block_sum(const char* name, bool with_barrier) {
    constexpr int blocks = 5;
    const std::vector<float> in = random_floats(blocks * SUM_BLOCK);
    float* in_d = device_copy(in);
    float* out_d = device_poisoned<float>(blocks);
    SPIN_LAUNCH(block_sum_kernel, blocks, SUM_BLOCK, 0, nullptr, out_d, in_d, with_barrier);
    launch_failed(name);
    const std::vector<float> out = host_copy(out_d, blocks);
    bool ok = true;
    for (int b = 0; b < blocks; ++b) {
        double expected = 0;
        for (int i = 0; i < SUM_BLOCK; ++i) expected += in[b * SUM_BLOCK + i];
        if (!(std::fabs(out[b] - expected) <= 1e-4 * (1 + std::fabs(expected)))) {
            report(false, "%s: block %d sums to %g, expected %g", name, b, out[b], expected);
            ok = false;
            break;
        }
    }
    if (ok) report(true, "%s: %d block sums match", name, blocks);
    cudaFree(in_d);
    cudaFree(out_d);
    return ok;
}

bool check_staged_copy(const char* name, bool with_wait) {
    constexpr int blocks = 3;
    const std::vector<float> in = random_floats(blocks * 256);
    float* in_d = device_copy(in);
    float* out_d = device_poisoned<float>(blocks * 256);
    SPIN_LAUNCH(staged_copy_kernel, blocks, 64, 0, nullptr, out_d, in_d, with_wait);
    launch_failed(name);
    const std::vector<float> out = host_copy(out_d, blocks * 256);
    bool ok = true;
    for (int b = 0; b < blocks && ok; ++b) {
        for (int i = 0; i < 256; ++i) {
            const float expected = 2.0f * in[b * 256 + (i + 5) % 256];
            if (!(out[b * 256 + i] == expected)) {
                report(false, "%s: out[%d] = %g, expected %g", name, b * 256 + i, out[b * 256 + i], expected);
                ok = false;
                break;
            }
        }
    }
    if (ok) report(true, "%s: %d staged floats match", name, blocks * 256);
    cudaFree(in_d);
    cudaFree(out_d);
    return ok;
}

// The upload path of spin.backend.cuda.StagingRing through the C ABI: page-locked staging, an
// asynchronous copy, an event recorded after it; the event completes, the data lands, and the
// staging memory may then be rewritten for the next copy without touching the first.
void check_pinned_staging() {
    constexpr size_t COUNT = 1 << 16;
    spin_stream_t stream = nullptr;
    spin_event_t copied = nullptr;
    void* staging = nullptr;
    must(spin_stream_create(&stream), "spin_stream_create");
    must(spin_event_create(&copied), "spin_event_create");
    must(spin_host_alloc(&staging, COUNT * sizeof(float)), "spin_host_alloc");
    float* first_d = device_poisoned<float>(COUNT);
    float* second_d = device_poisoned<float>(COUNT);
    const std::vector<float> first = random_floats(COUNT), second = random_floats(COUNT);
    int never_recorded = 0, complete = 0;
    must(spin_event_query(copied, &never_recorded), "spin_event_query");
    std::memcpy(staging, first.data(), COUNT * sizeof(float));
    must(spin_memcpy(first_d, staging, COUNT * sizeof(float), SPIN_MEMCPY_HOST_TO_DEVICE, stream), "spin_memcpy");
    must(spin_event_record(copied, stream), "spin_event_record");
    must(spin_event_synchronize(copied), "spin_event_synchronize");
    must(spin_event_query(copied, &complete), "spin_event_query");
    std::memcpy(staging, second.data(), COUNT * sizeof(float));
    must(spin_memcpy(second_d, staging, COUNT * sizeof(float), SPIN_MEMCPY_HOST_TO_DEVICE, stream), "spin_memcpy");
    must(spin_stream_synchronize(stream), "spin_stream_synchronize");
    const bool landed = host_copy(first_d, COUNT) == first && host_copy(second_d, COUNT) == second;
    const bool rejected = spin_event_query(nullptr, &complete) == SPIN_ERR_INVALID_ARG &&
                          spin_event_query(copied, nullptr) == SPIN_ERR_INVALID_ARG &&
                          spin_event_synchronize(nullptr) == SPIN_ERR_INVALID_ARG &&
                          spin_host_alloc(nullptr, 4) == SPIN_ERR_INVALID_ARG;
    report(never_recorded == 1 && complete == 1 && landed && rejected,
           "pinned staging: an unrecorded event is complete, the recorded copy completes and lands, the staging "
           "memory reused after it leaves the first copy intact; NULL arguments are refused");
    must(spin_host_free(staging), "spin_host_free");
    must(spin_host_free(nullptr), "spin_host_free");
    must(spin_event_destroy(copied), "spin_event_destroy");
    must(spin_stream_destroy(stream), "spin_stream_destroy");
    cudaFree(first_d);
    cudaFree(second_d);
}

// Timing events (the benchmarks' clock): a pair recorded around work gives a finite, non-negative
// elapsed time; an ordering-only event cannot be timed, on a GPU and on the emulator alike.
void check_timing_events() {
    spin_stream_t stream = nullptr;
    spin_event_t start = nullptr, end = nullptr, untimed = nullptr;
    must(spin_stream_create(&stream), "spin_stream_create");
    must(spin_timing_event_create(&start), "spin_timing_event_create");
    must(spin_timing_event_create(&end), "spin_timing_event_create");
    must(spin_event_create(&untimed), "spin_event_create");
    float* data_d = device_poisoned<float>(1 << 16);
    must(spin_event_record(start, stream), "spin_event_record");
    must(spin_event_record(untimed, stream), "spin_event_record");
    must(spin_fill(stream, data_d, 1.0f, 1 << 16), "spin_fill");
    must(spin_event_record(end, stream), "spin_event_record");
    must(spin_event_synchronize(end), "spin_event_synchronize");
    float millis = -1.0f, ignored = 0.0f;
    must(spin_event_elapsed_ms(start, end, &millis), "spin_event_elapsed_ms");
    const bool untimed_refused = spin_event_elapsed_ms(untimed, end, &ignored) != SPIN_OK;
    const bool null_refused = spin_event_elapsed_ms(start, end, nullptr) == SPIN_ERR_INVALID_ARG &&
                              spin_event_elapsed_ms(nullptr, end, &ignored) == SPIN_ERR_INVALID_ARG &&
                              spin_timing_event_create(nullptr) == SPIN_ERR_INVALID_ARG;
    report(std::isfinite(millis) && millis >= 0.0f && untimed_refused && null_refused,
           "timing events: %.4f ms around a fill; an untimed event and NULL arguments are refused", millis);
    must(spin_event_destroy(start), "spin_event_destroy");
    must(spin_event_destroy(end), "spin_event_destroy");
    must(spin_event_destroy(untimed), "spin_event_destroy");
    must(spin_stream_destroy(stream), "spin_stream_destroy");
    cudaFree(data_d);
}

void check_tile_mma() {
    std::vector<uint16_t> a(16 * 16), b(16 * 8), bt(8 * 16);
    std::vector<float> c = random_floats(16 * 8);
    for (uint16_t& v : a) v = bf16_bits(uniform());
    for (int k = 0; k < 16; ++k) {
        for (int n = 0; n < 8; ++n) {
            b[k * 8 + n] = bf16_bits(uniform());
            bt[n * 16 + k] = b[k * 8 + n];
        }
    }
    std::vector<double> expected(16 * 8);
    for (int m = 0; m < 16; ++m) {
        for (int n = 0; n < 8; ++n) {
            double sum = c[m * 8 + n];
            for (int k = 0; k < 16; ++k) sum += static_cast<double>(bf16_value(a[m * 16 + k])) * bf16_value(b[k * 8 + n]);
            expected[m * 8 + n] = sum;
        }
    }
    uint16_t* a_d = device_copy(a);
    uint16_t* b_d = device_copy(b);
    uint16_t* bt_d = device_copy(bt);
    float* c_d = device_copy(c);
    float* d_trans = device_poisoned<float>(16 * 8);
    float* d_plain = device_poisoned<float>(16 * 8);
    float* d_direct = device_poisoned<float>(16 * 8);
    SPIN_LAUNCH(tile_mma_kernel, 1, 32, 0, nullptr, d_trans, d_plain, d_direct, a_d, b_d, bt_d, c_d);
    launch_failed("tile_mma_kernel");
    // fp32 accumulation of exact bf16 products: only the summation's rounding separates them.
    const char* routes[3] = {"cp.async + ldmatrix.x4 (A) + ldmatrix.x2.trans (B [k][n]) + mma",
                             "cp.async + ldmatrix.x4 (A) + ldmatrix.x2 (B [n][k]) + mma",
                             "fragments by the PTX ISA formulas + mma"};
    float* outputs[3] = {d_trans, d_plain, d_direct};
    for (int r = 0; r < 3; ++r) {
        const double error = relative_error(expected, host_copy(outputs[r], 16 * 8));
        report(error < 1e-6, "mma m16n8k16 bf16 via %s: relative error %.2e against the naive product", routes[r],
               error);
    }
    for (void* p : {static_cast<void*>(a_d), static_cast<void*>(b_d), static_cast<void*>(bt_d),
                    static_cast<void*>(c_d), static_cast<void*>(d_trans), static_cast<void*>(d_plain),
                    static_cast<void*>(d_direct)}) {
        cudaFree(p);
    }
}

void check_warp_ops() {
    constexpr int blocks = 3;
    int* out_d = device_poisoned<int>(blocks * WARP_RESULTS * 64);
    unsigned* counter_d = nullptr;
    must(cudaMalloc(reinterpret_cast<void**>(&counter_d), sizeof(unsigned)), "cudaMalloc");
    must(cudaMemset(counter_d, 0, sizeof(unsigned)), "cudaMemset");
    SPIN_LAUNCH(warp_ops_kernel, blocks, 64, 0, nullptr, out_d, counter_d);
    launch_failed("warp_ops_kernel");
    const std::vector<int> out = host_copy(out_d, blocks * WARP_RESULTS * 64);
    const char* names[WARP_RESULTS] = {"__shfl_xor_sync", "__shfl_sync", "__shfl_up_sync",
                                       "__shfl_down_sync (width 16)", "__ballot_sync", "__shfl_xor_sync (half-warp masks)"};
    unsigned divisible_by_3 = 0;
    for (int lane = 0; lane < 32; lane += 3) divisible_by_3 |= 1u << lane;
    for (int k = 0; k < WARP_RESULTS; ++k) {
        int wrong = -1;
        for (int block = 0; block < blocks && wrong < 0; ++block) {
            for (int t = 0; t < 64; ++t) {
                const int lane = t % 32, base = t - lane;
                int expected = 0;
                switch (k) {
                    case 0: expected = (t ^ 5) * 10; break;
                    case 1: expected = base + 31 - lane; break;
                    case 2: expected = lane >= 3 ? t - 3 : t; break;
                    case 3: expected = lane % 16 + 3 < 16 ? t + 3 : t; break;
                    case 4: expected = static_cast<int>(divisible_by_3); break;
                    case 5: expected = t ^ 1; break;
                }
                if (out[(block * WARP_RESULTS + k) * 64 + t] != expected) {
                    wrong = t;
                    break;
                }
            }
        }
        report(wrong < 0, "%s%s", names[k], wrong < 0 ? " gives every lane the right value" : ": wrong lane value");
    }
    const unsigned count = host_copy(counter_d, 1)[0];
    report(count == blocks * 64, "atomicAdd from %d threads counts %u", blocks * 64, count);
    cudaFree(out_d);
    cudaFree(counter_d);
}

#ifdef SPIN_CUDA_EMULATOR
// The launch must fail, with the emulator's explanation containing `expected`.
void expect_launch_error(const char* what, cudaError_t expected_error, const char* expected) {
    const cudaError_t error = cudaGetLastError();
    const char* text = cudaGetErrorString(error);
    report(error == expected_error && std::strstr(text, expected) != nullptr, "%s is reported: %s: %s", what,
           cudaGetErrorName(error), text);
}

void check_emulator_errors() {
    SPIN_LAUNCH(deadlock_kernel, 2, 64, 0, nullptr);
    expect_launch_error("a deadlock (lane at __syncthreads, its warp at __syncwarp)", cudaErrorLaunchFailure,
                        "deadlock");
    float* in_d = device_poisoned<float>(4);
    SPIN_LAUNCH(forgotten_wait_kernel, 1, 32, 0, nullptr, in_d);
    expect_launch_error("a thread exiting with a cp.async never waited for", cudaErrorLaunchFailure,
                        "never waited for");
    SPIN_LAUNCH(nothing_kernel, 1, 2048, 0, nullptr);
    expect_launch_error("a block of 2048 threads", cudaErrorInvalidConfiguration, "2048 threads");
    float* out_d = device_poisoned<float>(32);
    SPIN_LAUNCH(big_dynamic_shared_kernel, 1, 32, 64 * 1024, nullptr, out_d);
    expect_launch_error("64 KiB of dynamic shared memory without opting in", cudaErrorInvalidValue,
                        "cudaFuncSetAttribute");
    must(cudaFuncSetAttribute(big_dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
         "cudaFuncSetAttribute");
    SPIN_LAUNCH(big_dynamic_shared_kernel, 1, 32, 64 * 1024, nullptr, out_d);
    report(cudaGetLastError() == cudaSuccess, "64 KiB of dynamic shared memory after opting in launches");
    cudaFree(in_d);
    cudaFree(out_d);
}

// Page-locked memory is its own kind: freeing it as device memory, or device memory as it, fails.
void check_pinned_kinds() {
    void *pinned = nullptr, *device = nullptr;
    must(cudaMallocHost(&pinned, 64), "cudaMallocHost");
    must(cudaMalloc(&device, 64), "cudaMalloc");
    const bool refused = cudaFree(pinned) == cudaErrorInvalidValue && cudaFreeHost(device) == cudaErrorInvalidValue;
    cudaGetLastError();
    const bool freed = cudaFreeHost(pinned) == cudaSuccess && cudaFree(device) == cudaSuccess &&
                       cudaFreeHost(nullptr) == cudaSuccess;
    report(refused && freed, "cudaFree refuses page-locked memory and cudaFreeHost device memory; each frees its own");
}

// Stream-ordered pool calls keep current and high-water byte counts.
void check_pool_counts() {
    cudaMemPool_t pool = nullptr;
    must(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
    uint64_t zero = 0, used = 0, high = 0;
    must(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero), "cudaMemPoolSetAttribute");
    void *a = nullptr, *b = nullptr;
    must(cudaMallocAsync(&a, 1000, nullptr), "cudaMallocAsync");
    must(cudaMallocAsync(&b, 3000, nullptr), "cudaMallocAsync");
    must(cudaFreeAsync(a, nullptr), "cudaFreeAsync");
    must(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used), "cudaMemPoolGetAttribute");
    must(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high), "cudaMemPoolGetAttribute");
    must(cudaFreeAsync(b, nullptr), "cudaFreeAsync");
    report(used == 3000 && high == 4000, "pool counts: %llu bytes used, %llu at most (expected 3000, 4000)",
           static_cast<unsigned long long>(used), static_cast<unsigned long long>(high));
}
#endif

int run_all() {
    std::vector<KernelCheck> checks = kernel_checks();
    std::sort(checks.begin(), checks.end(),
              [](const KernelCheck& a, const KernelCheck& b) { return std::strcmp(a.family, b.family) < 0; });
    for (const KernelCheck& check : checks) check.run();
    check_tile_mma();
    check_warp_ops();
    check_block_sum("block sum with __syncthreads", true);
    check_staged_copy("cp.async staging with its wait", true);
#ifdef SPIN_CUDA_EMULATOR
    // The planted faults must make the same checks fail, or the emulator would hide such bugs.
    std::printf("---- planted faults (each check below must fail) ----\n");
    const int before = failures;
    const bool sync_caught = !check_block_sum("block sum WITHOUT __syncthreads", false);
    const bool wait_caught = !check_staged_copy("cp.async staging WITHOUT its wait", false);
    failures = before;
    std::printf("----\n");
    report(sync_caught, "the missing __syncthreads makes the block-sum check fail");
    report(wait_caught, "the missing cp.async wait makes the staging check fail");
    check_emulator_errors();
    check_pool_counts();
    check_pinned_kinds();
#endif
    check_pinned_staging();
    check_timing_events();
    std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
    return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc == 1) return run_all();
    const char* which = argv[1];
    if (std::strcmp(which, "planted-missing-sync") == 0) return check_block_sum("block sum WITHOUT __syncthreads", false) ? 0 : 1;
    if (std::strcmp(which, "planted-missing-wait") == 0) return check_staged_copy("cp.async staging WITHOUT its wait", false) ? 0 : 1;
    if (std::strcmp(which, "planted-oob-global") == 0 || std::strcmp(which, "planted-oob-shared") == 0) {
        float* out_d = nullptr;
        must(cudaMalloc(reinterpret_cast<void**>(&out_d), 31 * sizeof(float)), "cudaMalloc");
        if (std::strcmp(which, "planted-oob-global") == 0) {
            SPIN_LAUNCH(oob_global_kernel, 1, 32, 0, nullptr, out_d);  // 32 threads, 31 floats
        } else {
            SPIN_LAUNCH(oob_shared_kernel, 1, 31, 0, nullptr, out_d);  // staging[31] is still inside
            SPIN_LAUNCH(oob_shared_kernel, 1, 32, 0, nullptr, out_d);  // and thread 31 writes staging[32]
        }
        must(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        std::printf("NOT CAUGHT: the out-of-bounds write of %s went unnoticed (built without AddressSanitizer?)\n", which);
        return 2;
    }
    std::fprintf(stderr, "usage: %s [planted-missing-sync|planted-missing-wait|planted-oob-global|planted-oob-shared]\n",
                 argv[0]);
    return 2;
}
