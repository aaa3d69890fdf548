// Times every kernel entry point of spin_native.h at Mistral-7B shapes through the public C ABI:
// the median of repeated launches (each timed alone with CUDA events after warm-up launches) and
// beside it the effective bandwidth (GB/s, each tensor counted once as read and once as written;
// the formula per op is in its comment below) or, for attention, TFLOP/s; then the share of the
// device's peak (the header prints the peak computed from the device's attributes).
//
// Usage: spin_kernel_bench [--tiny] [N [repeats]]
//   N        rows = tokens of one sequence (B = 1, T = N), default 2048
//   repeats  timed launches per kernel, default 20 (attention backward: repeats / 4, at least 1),
//            after 3 warm-up launches (1 for attention backward)
//   --tiny   small model dims (C=64, F=160, H=4, KVH=2, D=16, V=300, 2^14-element shard; N
//            default 64): a smoke run of every launcher, e.g. under the CUDA emulator, built by hand:
//              g++ -std=c++17 -O1 -Inative/emu -Inative -Inative/include -Ikernels -x c++
//                  tests/cuda/bench_kernels.cu kernels/*.cu native/*.cu native/emu/emu_runtime.cpp
//                  -o /tmp/bench_emu -lpthread      (with -fsanitize=address: bounds checked too)
// tools/gpu-check.sh runs target/native/spin_kernel_bench with the defaults under a 60 s limit:
// about 5 GiB of buffers, and an expected few seconds of kernels on an H100/H200 (an estimate; not
// yet run on a GPU).
//
// Mistral-7B: C = 4096, F = 14336, H = 32 query heads, KVH = 8 kv heads, D = 128, V = 32000. Ops
// over parameters (add, scale, fill, sum, clip, optimizer steps) use a 2^27-element fp32 shard
// (512 MiB; the whole 7.24e9-parameter gradient would not make a quick bench). Attention runs at
// B = 1, T = N with window 0 (none) and 4096; decoding at M = 16 tokens, one per sequence, each
// over 2048 cached positions in blocks of 16 (a paged cache of 16 x 2048 rows, blocks shuffled).
//
// Output, after the header lines: one line per kernel,
//   name  shape  median-us  rate (GB/s | TFLOP/s | - for launch-bound ops)  % of peak
// Peaks: HBM = 2 * memory clock (cudaDevAttrMemoryClockRate, kHz) * bus width (bits) / 8 bytes/s;
// fp32 (non-tensor) = SMs * fp32 lanes per SM * 2 * SM clock (cudaDevAttrClockRate). For reference,
// H200: about 4.8 TB/s HBM3e and 67 TFLOP/s fp32 non-tensor; H100 SXM: 3.35 TB/s and 67 TFLOP/s.
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <vector>

#include <cuda_runtime.h>

#include "spin_native.h"

namespace {

void check(int status, const char* call) {
    if (status != SPIN_OK) {
        std::fprintf(stderr, "%s failed (status %d): %s\n", call, status, spin_last_error());
        std::exit(1);
    }
}

void check_cuda(cudaError_t error, const char* call) {
    if (error != cudaSuccess) {
        std::fprintf(stderr, "%s failed: %s\n", call, cudaGetErrorString(error));
        std::exit(1);
    }
}

// The model dimensions and the bench's problem sizes besides N.
struct Model {
    const char* name;
    int C, F, H, KVH, D, V;
    size_t P;         // elements of the parameter shard (add/scale/fill, sums, optimizer steps)
    int M, ctx, bs;   // decoding: M tokens (one per sequence) over ctx cached positions, blockSize bs
    int lossB;        // SPIN loss pairs; the row sums take lossB sequences of N / lossB tokens
    int window;       // the sliding window timed besides 0 (none)
    float theta;      // RoPE base
};
constexpr Model MISTRAL{"mistral-7b", 4096, 14336, 32, 8, 128, 32000, size_t(1) << 27, 16, 2048, 16, 8, 4096, 1e6f};
constexpr Model TINY{"tiny", 64, 160, 4, 2, 16, 300, size_t(1) << 14, 4, 64, 16, 8, 48, 1e6f};

// ---- buffers ---------------------------------------------------------------------------------

std::vector<void*> allocations;
size_t allocated_bytes = 0;

// count elements of T from spin_malloc (cudaMalloc), freed at exit; count > 0.
template <class T>
T* alloc(size_t count) {
    void* pointer = nullptr;
    check(spin_malloc(&pointer, count * sizeof(T)), "spin_malloc");
    allocations.push_back(pointer);
    allocated_bytes += count * sizeof(T);
    return static_cast<T*>(pointer);
}

// Small random floats in [-1, 1), uploaded once; every float input is tiled from it by
// device-to-device copies. The odd length makes consecutive rows differ.
constexpr size_t PATTERN = (size_t(1) << 20) + 7;
float* pattern = nullptr;

void make_pattern() {
    std::vector<float> host(PATTERN);
    uint32_t state = 12345u;
    for (float& value : host) {
        state = state * 1664525u + 1013904223u;
        value = static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    pattern = alloc<float>(PATTERN);
    check(spin_memcpy(pattern, host.data(), PATTERN * sizeof(float), SPIN_MEMCPY_HOST_TO_DEVICE, nullptr),
          "spin_memcpy");
    check(spin_stream_synchronize(nullptr), "spin_stream_synchronize");
}

void fill_random(float* dst, size_t count, uint32_t seed) {
    size_t start = (seed * 104729u) % PATTERN;
    for (size_t done = 0; done < count;) {
        const size_t n = std::min(PATTERN - start, count - done);
        check(spin_memcpy(dst + done, pattern + start, n * sizeof(float), SPIN_MEMCPY_DEVICE_TO_DEVICE, nullptr),
              "spin_memcpy");
        done += n;
        start = 0;
    }
}

float* random_floats(size_t count, uint32_t seed) {
    float* device = alloc<float>(count);
    fill_random(device, count, seed);
    return device;
}

int32_t* upload_ints(const std::vector<int32_t>& host) {
    int32_t* device = alloc<int32_t>(host.size());
    check(spin_memcpy(device, host.data(), host.size() * sizeof(int32_t), SPIN_MEMCPY_HOST_TO_DEVICE, nullptr),
          "spin_memcpy");
    check(spin_stream_synchronize(nullptr), "spin_stream_synchronize");  // before `host` goes
    return device;
}

// ---- peaks -------------------------------------------------------------------------------------

// Memory clock (kHz), memory bus width (bits) and SM clock (kHz) of device 0; 0 where unknown.
// CUDA 13's cudaDeviceProp has no clock rates any more; the attributes still give them.
struct DeviceClocks {
    int memory_khz = 0, bus_bits = 0, sm_khz = 0;
};

DeviceClocks device_clocks() {
    DeviceClocks clocks;
#ifndef SPIN_CUDA_EMULATOR  // the emulator has no such attributes: the header says "see docs"
    const auto read = [](int* value, cudaDeviceAttr attribute) {
        if (cudaDeviceGetAttribute(value, attribute, 0) != cudaSuccess) {
            *value = 0;
            cudaGetLastError();
        }
    };
    read(&clocks.memory_khz, cudaDevAttrMemoryClockRate);
    read(&clocks.bus_bits, cudaDevAttrGlobalMemoryBusWidth);
    read(&clocks.sm_khz, cudaDevAttrClockRate);
#endif
    return clocks;
}

// FP32 (non-tensor) lanes per SM; 0 when unknown.
int fp32_lanes_per_sm(int major, int minor) {
    if (major == 7) return 64;
    if (major == 8) return minor == 0 ? 64 : 128;
    if (major == 9 || major == 10 || major == 12) return 128;
    return 0;
}

// ---- timing ------------------------------------------------------------------------------------

enum class Rate { Bandwidth, Flops, Latency };

struct Bench {
    spin_stream_t stream = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    double peak_bytes_per_s = 0, peak_flops_per_s = 0;  // 0: unknown

    // Times `launch` (one call of a spin_* entry point on `stream`): `warmups` launches, then
    // `repeats` launches each between two events; prints the median and the rate of `amount`
    // (bytes for Bandwidth, floating-point operations for Flops, ignored for Latency).
    void time(const char* name, const char* shape, Rate rate, double amount, int repeats, int warmups,
              const std::function<int()>& launch) {
        const cudaStream_t cuda_stream = reinterpret_cast<cudaStream_t>(stream);
        for (int i = 0; i < warmups; ++i) check(launch(), name);
        std::vector<float> micros;
        for (int i = 0; i < repeats; ++i) {
            check_cuda(cudaEventRecord(start, cuda_stream), "cudaEventRecord");
            check(launch(), name);
            check_cuda(cudaEventRecord(stop, cuda_stream), "cudaEventRecord");
            check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
            float millis = 0.0f;
            check_cuda(cudaEventElapsedTime(&millis, start, stop), "cudaEventElapsedTime");
            micros.push_back(millis * 1000.0f);
        }
        std::sort(micros.begin(), micros.end());
        const double median = micros[micros.size() / 2];
        const double seconds = median * 1e-6;
        char rate_text[32] = "       -", share_text[16] = "     -";
        if (seconds > 0 && rate == Rate::Bandwidth) {
            const double bytes_per_s = amount / seconds;
            std::snprintf(rate_text, sizeof rate_text, "%8.1f GB/s", bytes_per_s / 1e9);
            if (peak_bytes_per_s > 0) std::snprintf(share_text, sizeof share_text, "%5.1f%%", 100 * bytes_per_s / peak_bytes_per_s);
        } else if (seconds > 0 && rate == Rate::Flops) {
            const double flops_per_s = amount / seconds;
            std::snprintf(rate_text, sizeof rate_text, "%8.2f TFLOP/s", flops_per_s / 1e12);
            if (peak_flops_per_s > 0) std::snprintf(share_text, sizeof share_text, "%5.1f%%", 100 * flops_per_s / peak_flops_per_s);
        }
        std::printf("%-28s %-40s %11.1f  %-16s %s\n", name, shape, median, rate_text, share_text);
        std::fflush(stdout);
    }
};

// The shape column: formatted into one buffer, printed before the next call.
const char* fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
const char* fmt(const char* format, ...) {
    static char text[96];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    return text;
}

// Query-key pairs a causal attention over T positions computes, with window W (0: none): query i
// sees min(i + 1, W) keys. Without a window, T (T + 1) / 2.
double visible_pairs(int T, int window) {
    double pairs = 0;
    for (int i = 0; i < T; ++i) pairs += window > 0 ? std::min(i + 1, window) : i + 1;
    return pairs;
}

}  // namespace

int main(int argc, char** argv) {
    const bool tiny = argc > 1 && std::strcmp(argv[1], "--tiny") == 0;
    const int first_arg = tiny ? 2 : 1;
    const Model model = tiny ? TINY : MISTRAL;
    const int N = argc > first_arg ? std::atoi(argv[first_arg]) : (tiny ? 64 : 2048);
    const int repeats = argc > first_arg + 1 ? std::atoi(argv[first_arg + 1]) : 20;
    if (N <= 0 || repeats <= 0 || argc > first_arg + 2) {
        std::fprintf(stderr, "usage: %s [--tiny] [N [repeats]], N and repeats positive (default 2048 and 20)\n",
                     argv[0]);
        return 2;
    }
    const auto started = std::chrono::steady_clock::now();

    // ---- device and peaks
    int device_count = 0;
    check(spin_device_count(&device_count), "spin_device_count");
    spin_device_props props;
    check(spin_device_properties(0, &props), "spin_device_properties");
    Bench bench;
    const DeviceClocks clocks = device_clocks();
    const int memory_khz = clocks.memory_khz, bus_bits = clocks.bus_bits, sm_khz = clocks.sm_khz;
    const int lanes = fp32_lanes_per_sm(props.compute_major, props.compute_minor);
    bench.peak_bytes_per_s = 2.0 * memory_khz * 1e3 * bus_bits / 8.0;
    bench.peak_flops_per_s = static_cast<double>(props.multiprocessor_count) * lanes * 2.0 * sm_khz * 1e3;
    std::printf("device 0 of %d: %s (sm_%d%d, %d SMs, %.1f GiB)\n", device_count, props.name, props.compute_major,
                props.compute_minor, props.multiprocessor_count, props.total_memory_bytes / 1073741824.0);
    if (bench.peak_bytes_per_s > 0) {
        std::printf("peak: HBM 2 x %d MHz x %d bit / 8 = %.0f GB/s", memory_khz / 1000, bus_bits,
                    bench.peak_bytes_per_s / 1e9);
    } else {
        std::printf("peak: HBM see docs (H200 ~4.8 TB/s)");
    }
    if (bench.peak_flops_per_s > 0) {
        std::printf("; fp32 non-tensor %d SMs x %d lanes x 2 x %d MHz = %.1f TFLOP/s\n", props.multiprocessor_count,
                    lanes, sm_khz / 1000, bench.peak_flops_per_s / 1e12);
    } else {
        std::printf("; fp32 see docs (H200 ~67 TFLOP/s non-tensor)\n");
    }

    const int C = model.C, F = model.F, H = model.H, KVH = model.KVH, D = model.D, V = model.V;
    const int B = 1, T = N;  // attention, RoPE: one sequence of N tokens
    const size_t P = model.P;
    const int S = model.M, M = model.M, ctx = model.ctx, bs = model.bs;
    const int maxBlocks = (ctx + bs - 1) / bs;
    const int R = S * maxBlocks * bs;  // cache rows: every sequence's blocks, none shared
    const int W = KVH * D;             // one cache row: a position's keys (or values) of all kv heads
    const int rowB = model.lossB, rowT = std::max(1, N / rowB);
    const int lossB = model.lossB;
    const int attention_repeats = std::max(1, repeats / 4);
    std::printf("model %s: N=%d (B=%d T=%d) C=%d F=%d H=%d KVH=%d D=%d V=%d; shard %zu; decode M=%d x %d positions, "
                "blockSize %d; %d runs (attention backward %d) after 3 warm-ups (1)\n",
                model.name, N, B, T, C, F, H, KVH, D, V, P, M, ctx, bs, repeats, attention_repeats);

    // ---- buffers, each sized by the shape contract of the ops that use it (spin_native.h)
    const size_t NC = static_cast<size_t>(N) * C, NF = static_cast<size_t>(N) * F, NV = static_cast<size_t>(N) * V;
    const size_t VC = static_cast<size_t>(V) * C;
    const size_t QS = static_cast<size_t>(B) * T * H * D;    // q, out, dOut, dq [B,T,H,D]
    const size_t KS = static_cast<size_t>(B) * T * KVH * D;  // k, v, dk, dv [B,T,KVH,D]
    const size_t CACHE = static_cast<size_t>(R) * W;         // kCache, vCache [R,KVH,D]
    const size_t DEC = static_cast<size_t>(M) * H * D;       // decode q, out [M,H,D]
    make_pattern();
    uint32_t seed = 1;
    // activations [N,C] and RMSNorm
    float* x = random_floats(NC, seed++);
    float* y = alloc<float>(NC);
    float* dy = random_floats(NC, seed++);
    float* dx = alloc<float>(NC);
    float* norm_weight = random_floats(C, seed++);
    float* norm_dweight = alloc<float>(C);
    check(spin_memset_zero(norm_dweight, C * sizeof(float), nullptr), "spin_memset_zero");
    float* rstd = alloc<float>(N);
    size_t rms_scratch_bytes = 0;
    check(spin_rmsnorm_backward_scratch_bytes(N, C, &rms_scratch_bytes), "spin_rmsnorm_backward_scratch_bytes");
    float* rms_scratch = alloc<float>(std::max<size_t>(1, (rms_scratch_bytes + 3) / 4));
    uint16_t* bf16_act = alloc<uint16_t>(NC);
    // embedding: table, dTable [V,C], ids [N] in [0, V)
    float* table = random_floats(VC, seed++);
    float* dtable = random_floats(VC, seed++);
    std::vector<int32_t> host_ids(N), host_labels(N);
    uint32_t state = 777u;
    auto next = [&state] {
        state = state * 1664525u + 1013904223u;
        return state >> 8;
    };
    for (int n = 0; n < N; ++n) host_ids[n] = static_cast<int32_t>(next() % V);
    for (int n = 0; n < N; ++n) host_labels[n] = static_cast<int32_t>(next() % V);
    std::vector<char> seen(V, 0);
    size_t distinct_ids = 0;
    for (int32_t id : host_ids) {
        if (!seen[id]) ++distinct_ids;
        seen[id] = 1;
    }
    int32_t* ids = upload_ints(host_ids);
    int32_t* labels = upload_ints(host_labels);
    // attention and RoPE [B,T,...]; positions [B,T] = t; keyMask [B,T] all visible; lse [B,H,T]
    float* q = random_floats(QS, seed++);
    float* k = random_floats(KS, seed++);
    float* v = random_floats(KS, seed++);
    float* att_out = alloc<float>(QS);
    float* att_lse = alloc<float>(static_cast<size_t>(B) * H * T);
    float* att_dout = random_floats(QS, seed++);
    float* dq = alloc<float>(QS);
    float* dk = alloc<float>(KS);
    float* dv = alloc<float>(KS);
    size_t att_scratch_bytes = 0;
    check(spin_attention_backward_scratch_bytes(B, T, H, &att_scratch_bytes), "spin_attention_backward_scratch_bytes");
    void* att_scratch = alloc<char>(std::max<size_t>(1, att_scratch_bytes));
    std::vector<int32_t> host_positions(static_cast<size_t>(B) * T), host_mask(static_cast<size_t>(B) * T, 1);
    for (size_t i = 0; i < host_positions.size(); ++i) host_positions[i] = static_cast<int32_t>(i % T);
    int32_t* positions = upload_ints(host_positions);
    int32_t* key_mask = upload_ints(host_mask);
    // SwiGLU [N,F]: gate, up, out (also the backward's dOut), dGate, dUp
    float* gate = random_floats(NF, seed++);
    float* up = random_floats(NF, seed++);
    float* ffn_out = alloc<float>(NF);
    float* dgate = alloc<float>(NF);
    float* dup = alloc<float>(NF);
    // log-probs: logits, dLogits [N,V]; logp, lse, dLogp [N]
    float* logits = random_floats(NV, seed++);
    float* dlogits = alloc<float>(NV);
    float* logp = alloc<float>(N);
    float* logit_lse = alloc<float>(N);
    float* dlogp = random_floats(N, seed++);
    // row sums [rowB,rowT] -> [rowB]; SPIN loss [lossB]
    const size_t rows_total = static_cast<size_t>(rowB) * rowT;
    float* row_in = random_floats(rows_total, seed++);
    float* row_out = alloc<float>(rowB);
    float* row_din = alloc<float>(rows_total);
    float* row_dout = random_floats(rowB, seed++);
    float* policy_real = random_floats(lossB, seed++);
    float* policy_generated = random_floats(lossB, seed++);
    float* opponent_real = random_floats(lossB, seed++);
    float* opponent_generated = random_floats(lossB, seed++);
    float* d_policy_real = alloc<float>(lossB);
    float* d_policy_generated = alloc<float>(lossB);
    double* loss_stats = alloc<double>(SPIN_LOSS_STATS);
    double* metric_sums = alloc<double>(SPIN_LOSS_STATS);
    // parameter shard [P]: param, grad, two optimizer states, the bf16 copy; sums and the clip factor
    float* param = random_floats(P, seed++);
    float* grad = random_floats(P, seed++);
    float* state1 = alloc<float>(P);
    float* state2 = alloc<float>(P);
    uint16_t* bf16_param = alloc<uint16_t>(P);
    size_t sum_scratch_bytes = 0;
    check(spin_sum_scratch_bytes(P, &sum_scratch_bytes), "spin_sum_scratch_bytes");
    void* sum_scratch = alloc<char>(std::max<size_t>(1, sum_scratch_bytes));
    double* sum_out = alloc<double>(1);
    double* grad_norm = alloc<double>(1);
    float* clip_factor = alloc<float>(1);
    // paged KV cache [R,KVH,D]: sequence s's block j is blockTable[s,j], a shuffle of all S * maxBlocks
    // blocks; decode token m is sequence m at position ctx - 1
    float* k_cache = random_floats(CACHE, seed++);
    float* v_cache = random_floats(CACHE, seed++);
    float* dec_q = random_floats(DEC, seed++);
    float* dec_out = alloc<float>(DEC);
    std::vector<int32_t> host_table(static_cast<size_t>(S) * maxBlocks);
    for (size_t i = 0; i < host_table.size(); ++i) host_table[i] = static_cast<int32_t>(i);
    for (size_t i = host_table.size(); i > 1; --i) std::swap(host_table[i - 1], host_table[next() % i]);
    std::vector<int32_t> host_seq(M), host_pos(M, ctx - 1), host_rows(N);
    for (int m = 0; m < M; ++m) host_seq[m] = m;
    // Scatter (the prefill's cache write): token n goes to sequence (n / ctx) % S, position n % ctx,
    // so rows are distinct while N <= S * ctx (a later duplicate simply wins).
    for (int n = 0; n < N; ++n) {
        const int s = (n / ctx) % S, p = n % ctx;
        host_rows[n] = host_table[static_cast<size_t>(s) * maxBlocks + p / bs] * bs + p % bs;
    }
    int32_t* block_table = upload_ints(host_table);
    int32_t* query_seq = upload_ints(host_seq);
    int32_t* query_pos = upload_ints(host_pos);
    int32_t* scatter_rows = upload_ints(host_rows);
    // token choice for the decoding rows (the first of the logits' rows): a stream and a draw per
    // row, and a history of ctx ids for the repetition penalty
    const int choose_rows = std::min(M, N);
    std::vector<int32_t> host_streams(2 * static_cast<size_t>(choose_rows)), host_draws(choose_rows);
    std::vector<int32_t> host_history(static_cast<size_t>(choose_rows) * ctx), host_lengths(choose_rows, ctx);
    for (int32_t& word : host_streams) word = static_cast<int32_t>(next());
    for (int32_t& draw : host_draws) draw = static_cast<int32_t>(next() % 1000);
    for (int32_t& id : host_history) id = static_cast<int32_t>(next() % V);
    int32_t* sample_streams = upload_ints(host_streams);
    int32_t* sample_draws = upload_ints(host_draws);
    int32_t* sample_history = upload_ints(host_history);
    int32_t* sample_lengths = upload_ints(host_lengths);
    int32_t* chosen = alloc<int32_t>(choose_rows);
    size_t sample_scratch_bytes = 0;
    check(spin_sample_rows_scratch_bytes(choose_rows, V, &sample_scratch_bytes), "spin_sample_rows_scratch_bytes");
    void* sample_scratch = alloc<char>(sample_scratch_bytes);
    check(spin_stream_synchronize(nullptr), "spin_stream_synchronize");
    std::printf("buffers: %.2f GiB\n", allocated_bytes / 1073741824.0);

    check(spin_stream_create(&bench.stream), "spin_stream_create");
    check_cuda(cudaEventCreate(&bench.start), "cudaEventCreate");
    check_cuda(cudaEventCreate(&bench.stop), "cudaEventCreate");
    spin_stream_t stream = bench.stream;
    std::printf("%-28s %-40s %11s  %-16s %s\n", "kernel", "shape", "median us", "rate", "of peak");

    const double f4 = 4.0, f2 = 2.0;  // bytes of fp32, bf16
    // Activations in the CUDA backend's default compute dtype (fa bytes each); fp32 buffers are
    // large enough to hold them.
    const int act = SPIN_DTYPE_BF16;
    const double fa = f2;
    const int runs = repeats, warm = 3;

    // ---- element-wise over the shard [P] (clipping, zeroing)
    // fill: P*4 written
    check(spin_fill(stream, clip_factor, 0.9f, 1), "spin_fill");
    bench.time("fill", fmt("P=%zu", P), Rate::Bandwidth, P * f4, runs, warm,
               [&] { return spin_fill(stream, state1, 0.5f, P); });
    // add over the residual stream [N,C] (dst += src, in place, as the backward sums residual
    // gradients): 2*N*C read + N*C written in the compute dtype
    bench.time("add", fmt("N=%d C=%d (in place)", N, C), Rate::Bandwidth, 3 * NC * fa, runs, warm,
               [&] { return spin_add(stream, act, dx, dx, dy, NC); });
    // scale: P*4 read + P*4 written
    bench.time("scale", fmt("P=%zu", P), Rate::Bandwidth, 2 * P * f4, runs, warm,
               [&] { return spin_scale(stream, state1, 0.5f, P); });
    // scale_by_device: P*4 read + P*4 written (+4 for the factor)
    bench.time("scale_by_device", fmt("P=%zu", P), Rate::Bandwidth, 2 * P * f4 + 4, runs, warm,
               [&] { return spin_scale_by_device(stream, state1, clip_factor, P); });

    // ---- casts over activations [N,C]: N*C*4 + N*C*2
    bench.time("cast_f32_to_bf16", fmt("N=%d C=%d", N, C), Rate::Bandwidth, NC * (f4 + f2), runs, warm,
               [&] { return spin_cast_f32_to_bf16(stream, bf16_act, x, NC); });
    bench.time("cast_bf16_to_f32", fmt("N=%d C=%d", N, C), Rate::Bandwidth, NC * (f4 + f2), runs, warm,
               [&] { return spin_cast_bf16_to_f32(stream, y, bf16_act, NC); });

    // ---- embedding: forward N*C read (table rows) + N*C written in the compute dtype + N*4 ids;
    // backward N*C (dOut, compute dtype) + U*C*4 read and written (the U distinct ids' fp32 dTable
    // rows) + N*4 ids
    bench.time("embedding_forward", fmt("N=%d C=%d V=%d", N, C, V), Rate::Bandwidth, 2 * NC * fa + N * f4, runs, warm,
               [&] { return spin_embedding_forward(stream, act, y, ids, table, N, C, V); });
    bench.time("embedding_backward", fmt("N=%d C=%d V=%d (%zu ids)", N, C, V, distinct_ids), Rate::Bandwidth,
               NC * fa + 2.0 * distinct_ids * C * f4 + N * f4, runs, warm,
               [&] { return spin_embedding_backward(stream, act, dtable, ids, dy, N, C, V); });

    // ---- RMSNorm: forward N*C read + N*C written (+ C weight) in the compute dtype, N rstd;
    // backward 2*N*C read (dOut, in) + N*C written (+ weight), rstd and dWeight (fp32, read and
    // written; the internal column partials in scratch are not counted)
    bench.time("rmsnorm_forward", fmt("N=%d C=%d", N, C), Rate::Bandwidth, (2.0 * NC + C) * fa + N * f4, runs, warm,
               [&] { return spin_rmsnorm_forward(stream, act, y, rstd, x, norm_weight, N, C, 1e-5f); });
    bench.time("rmsnorm_backward", fmt("N=%d C=%d", N, C), Rate::Bandwidth, (3.0 * NC + C) * fa + (2.0 * C + N) * f4,
               runs, warm, [&] {
                   return spin_rmsnorm_backward(stream, act, dx, norm_dweight, rms_scratch, dy, x, norm_weight, rstd, N,
                                                C);
               });

    // ---- RoPE [B,T,heads,D]: read once, written once in the compute dtype (+ B*T*4 positions)
    bench.time("rope_forward (q)", fmt("B=%d T=%d H=%d D=%d", B, T, H, D), Rate::Bandwidth,
               2.0 * QS * fa + B * T * f4, runs, warm,
               [&] { return spin_rope_forward(stream, act, dq, q, positions, B, T, H, D, model.theta); });
    bench.time("rope_forward (k)", fmt("B=%d T=%d H=%d D=%d", B, T, KVH, D), Rate::Bandwidth,
               2.0 * KS * fa + B * T * f4, runs, warm,
               [&] { return spin_rope_forward(stream, act, dk, k, positions, B, T, KVH, D, model.theta); });
    bench.time("rope_backward (q)", fmt("B=%d T=%d H=%d D=%d", B, T, H, D), Rate::Bandwidth,
               2.0 * QS * fa + B * T * f4, runs, warm,
               [&] { return spin_rope_backward(stream, act, dq, att_dout, positions, B, T, H, D, model.theta); });

    // ---- SwiGLU [N,F] in the compute dtype: forward 2 read + 1 written; backward 3 read (dOut,
    // gate, up) + 2 written
    bench.time("swiglu_forward", fmt("N=%d F=%d", N, F), Rate::Bandwidth, 3.0 * NF * fa, runs, warm,
               [&] { return spin_swiglu_forward(stream, act, ffn_out, gate, up, NF); });
    bench.time("swiglu_backward", fmt("N=%d F=%d", N, F), Rate::Bandwidth, 5.0 * NF * fa, runs, warm,
               [&] { return spin_swiglu_backward(stream, act, dgate, dup, ffn_out, gate, up, NF); });

    // ---- KV cache write: M*W read + written in the compute dtype (+ M*4 row indices)
    bench.time("scatter_rows", fmt("M=%d W=%d R=%d", N, W, R), Rate::Bandwidth, 2.0 * N * W * fa + N * f4, runs,
               warm, [&] { return spin_scatter_rows(stream, act, k_cache, k, scatter_rows, N, W, R); });

    // ---- log-probs [N,V]: forward N*V*4 read (fp32 logits; + labels, logp, lse); backward N*V*4
    // read + N*V written in the compute dtype (dLogits feeds the lm_head's backward product)
    bench.time("logprob_forward", fmt("N=%d V=%d", N, V), Rate::Bandwidth, NV * f4 + 3.0 * N * f4, runs, warm,
               [&] { return spin_logprob_forward(stream, logp, logit_lse, logits, labels, N, V); });
    bench.time("logprob_backward", fmt("N=%d V=%d", N, V), Rate::Bandwidth, NV * (f4 + fa) + 3.0 * N * f4, runs, warm,
               [&] { return spin_logprob_backward(stream, act, dlogits, dlogp, logits, labels, logit_lse, N, V); });

    // ---- token choice, one block per row: argmax reads S*V*4; sampling's passes re-read a scratch
    // row of doubles a number of times that depends on the filters, so it is timed as latency
    bench.time("argmax_rows", fmt("S=%d V=%d", choose_rows, V), Rate::Bandwidth, static_cast<double>(choose_rows) * V * f4,
               runs, warm, [&] { return spin_argmax_rows(stream, chosen, logits, choose_rows, V); });
    struct SampleRule {
        const char* name;
        double temperature, top_p;
        int top_k;
        double penalty;
    };
    for (const SampleRule& rule : {SampleRule{"sample_rows T=1", 1, 1, 0, 1}, SampleRule{"sample_rows top-k 50", 1, 1, 50, 1},
                                   SampleRule{"sample_rows top-p 0.9", 1, 0.9, 0, 1},
                                   SampleRule{"sample_rows all filters", 0.7, 0.9, 50, 1.1}}) {
        bench.time(rule.name, fmt("S=%d V=%d", choose_rows, V), Rate::Latency, 0, runs, warm, [&] {
            return spin_sample_rows(stream, chosen, sample_scratch, logits, choose_rows, V, sample_streams, sample_draws,
                                    sample_history, sample_lengths, ctx, rule.temperature, rule.top_p, rule.top_k,
                                    rule.penalty);
        });
    }

    // ---- sequence sums and the SPIN loss: launch-bound at these sizes
    bench.time("row_sum_forward", fmt("B=%d T=%d", rowB, rowT), Rate::Latency, 0, runs, warm,
               [&] { return spin_row_sum_forward(stream, row_out, row_in, rowB, rowT); });
    bench.time("row_sum_backward", fmt("B=%d T=%d", rowB, rowT), Rate::Latency, 0, runs, warm,
               [&] { return spin_row_sum_backward(stream, row_din, row_dout, rowB, rowT); });
    bench.time("spin_loss_forward", fmt("B=%d sigmoid", lossB), Rate::Latency, 0, runs, warm, [&] {
        return spin_spin_loss_forward(stream, loss_stats, policy_real, policy_generated, opponent_real,
                                      opponent_generated, lossB, 0.1f, SPIN_LOSS_SIGMOID);
    });
    bench.time("spin_loss_backward", fmt("B=%d sigmoid", lossB), Rate::Latency, 0, runs, warm, [&] {
        return spin_spin_loss_backward(stream, d_policy_real, d_policy_generated, policy_real, policy_generated,
                                       opponent_real, opponent_generated, lossB, 0.1f, SPIN_LOSS_SIGMOID, 1.0f);
    });

    // ---- reductions over the shard: P*4 read (+ the block partials); the clip factor is one thread
    bench.time("sum (squares)", fmt("P=%zu", P), Rate::Bandwidth, P * f4, runs, warm,
               [&] { return spin_sum(stream, sum_out, sum_scratch, grad, P, 1, 1.0); });
    bench.time("sum", fmt("P=%zu", P), Rate::Bandwidth, P * f4, runs, warm,
               [&] { return spin_sum(stream, sum_out, sum_scratch, grad, P, 0, 1.0); });
    check(spin_sum(stream, sum_out, sum_scratch, grad, P, 1, 1.0), "spin_sum");
    bench.time("clip_scale", "1", Rate::Latency, 0, runs, warm,
               [&] { return spin_clip_scale(stream, clip_factor, grad_norm, sum_out, 1.0f); });
    // a SPIN micro-batch's loss statistics into the logging interval's sums
    bench.time("accumulate_weighted", "7", Rate::Latency, 0, runs, warm,
               [&] { return spin_accumulate_weighted(stream, metric_sums, loss_stats, 8.0, SPIN_LOSS_STATS); });

    // ---- optimizer steps over the shard. RMSprop: 3*P*4 read (param, grad, squareAvg) + 2*P*4
    // written; AdamW: 4*P*4 read (param, grad, expAvg, expAvgSq) + 3*P*4 written; the bf16 copy adds P*2.
    check(spin_memset_zero(state1, P * sizeof(float), stream), "spin_memset_zero");
    check(spin_memset_zero(state2, P * sizeof(float), stream), "spin_memset_zero");
    bench.time("rmsprop_step", fmt("P=%zu", P), Rate::Bandwidth, 5.0 * P * f4, runs, warm, [&] {
        return spin_rmsprop_step(stream, param, grad, nullptr, 0, state1, nullptr, P, 1e-5f, 0.99f, 1e-8f, 0.0f);
    });
    bench.time("rmsprop_step (+bf16 copy)", fmt("P=%zu", P), Rate::Bandwidth, 5.0 * P * f4 + P * f2, runs, warm, [&] {
        return spin_rmsprop_step(stream, param, grad, nullptr, 0, state1, bf16_param, P, 1e-5f, 0.99f, 1e-8f, 0.0f);
    });
    // step 1 of AdamW(lr 1e-5, betas 0.9/0.999): stepSize = lr / (1 - 0.9), correction2Sqrt = sqrt(1 - 0.999)
    const float step_size = static_cast<float>(1e-5 / (1 - 0.9)), correction2 = static_cast<float>(std::sqrt(1 - 0.999));
    bench.time("adamw_step", fmt("P=%zu", P), Rate::Bandwidth, 7.0 * P * f4, runs, warm, [&] {
        return spin_adamw_step(stream, param, grad, nullptr, 0, state1, state2, nullptr, P, 1e-5f, 0.9f, 0.999f, 1e-8f,
                               0.01f, step_size, correction2);
    });
    bench.time("adamw_step (+bf16 copy)", fmt("P=%zu", P), Rate::Bandwidth, 7.0 * P * f4 + P * f2, runs, warm, [&] {
        return spin_adamw_step(stream, param, grad, nullptr, 0, state1, state2, bf16_param, P, 1e-5f, 0.9f, 0.999f,
                               1e-8f, 0.01f, step_size, correction2);
    });
    // clipping's factor applied and the gradient zeroed in the step's pass: P*4 more written (the
    // zeros), where a scale pass and a fill would add 3*P*4. Last: it leaves grad zero.
    bench.time("adamw_step (+clip scale, zero grad)", fmt("P=%zu", P), Rate::Bandwidth, 8.0 * P * f4, runs, warm, [&] {
        return spin_adamw_step(stream, param, grad, clip_factor, 1, state1, state2, nullptr, P, 1e-5f, 0.9f, 0.999f,
                               1e-8f, 0.01f, step_size, correction2);
    });

    // ---- attention. FLOPs: forward 4*B*H*D per visible query-key pair (q.k and p*v, 2*D each):
    // 4*B*H*D*T(T+1)/2 without a window, about the usual causal 4*B*H*T*T*D/2; backward 2.5x that.
    for (const int window : {0, model.window}) {
        const double forward_flops = 4.0 * B * H * D * visible_pairs(T, window);
        char name[64];
        std::snprintf(name, sizeof name, "attention_forward w=%d", window);
        bench.time(name, fmt("B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D), Rate::Flops, forward_flops, runs, warm, [&] {
            return spin_attention_forward(stream, act, att_out, att_lse, q, k, v, key_mask, B, T, H, KVH, D, window);
        });
        // The simple kernel on the same problem: what the tensor-core one (bf16, D 64/128) gains.
        std::snprintf(name, sizeof name, "attention_forward_simple w=%d", window);
        bench.time(name, fmt("B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D), Rate::Flops, forward_flops, runs, warm, [&] {
            return spin_attention_forward_simple(stream, act, att_out, att_lse, q, k, v, key_mask, B, T, H, KVH, D,
                                                 window);
        });
        std::snprintf(name, sizeof name, "attention_backward w=%d", window);
        bench.time(name, fmt("B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D), Rate::Flops, 2.5 * forward_flops,
                   attention_repeats, 1, [&] {
                       return spin_attention_backward(stream, act, dq, dk, dv, att_scratch, att_dout, q, k, v,
                                                      key_mask, att_out, att_lse, B, T, H, KVH, D, window);
                   });
    }
    // Decoding, memory-bound, so GB/s: each token reads its ctx positions' keys and values once per
    // kv head (M*ctx*KVH*D*2 elements; the H/KVH query heads of a group share them) + q and out
    // (M*H*D*2), all in the compute dtype.
    size_t decode_scratch_bytes = 0;
    check(spin_attention_cached_forward_scratch_bytes(M, H, KVH, D, maxBlocks, bs, 0, 0, &decode_scratch_bytes),
          "spin_attention_cached_forward_scratch_bytes");
    float* decode_scratch = decode_scratch_bytes > 0 ? alloc<float>(decode_scratch_bytes / sizeof(float)) : nullptr;
    bench.time("attention_cached_forward",
               fmt("M=%d H=%d KVH=%d D=%d ctx=%d bs=%d", M, H, KVH, D, ctx, bs), Rate::Bandwidth,
               (2.0 * M * ctx * W + 2.0 * DEC) * fa, runs, warm, [&] {
                   return spin_attention_cached_forward(stream, act, dec_out, dec_q, k_cache, v_cache, block_table,
                                                        query_seq, query_pos, M, H, KVH, D, R, S, maxBlocks, bs, 0, 0,
                                                        decode_scratch);
               });
    // The per-query-head kernel on the same problem: what reading K/V once per group gains.
    bench.time("attention_cached_forward_simple",
               fmt("M=%d H=%d KVH=%d D=%d ctx=%d bs=%d", M, H, KVH, D, ctx, bs), Rate::Bandwidth,
               (2.0 * M * ctx * W + 2.0 * DEC) * fa, runs, warm, [&] {
                   return spin_attention_cached_forward_simple(stream, act, dec_out, dec_q, k_cache, v_cache,
                                                               block_table, query_seq, query_pos, M, H, KVH, D, R, S,
                                                               maxBlocks, bs, 0);
               });

    check(spin_stream_synchronize(stream), "spin_stream_synchronize");
    cudaEventDestroy(bench.start);
    cudaEventDestroy(bench.stop);
    check(spin_stream_destroy(stream), "spin_stream_destroy");
    for (void* pointer : allocations) check(spin_free(pointer), "spin_free");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("total %.1f s\n", seconds);
    return 0;
}
