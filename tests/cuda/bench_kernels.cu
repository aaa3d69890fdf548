// Times the spin_native kernels at Mistral-7B activation shapes through the public C ABI:
// median microseconds over repeated launches (CUDA events) and the effective bandwidth counting
// each tensor read or written once. Usage: spin_kernel_bench [N [C [repeats]]]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

void* device_alloc(size_t bytes) {
    void* pointer = nullptr;
    check(spin_malloc(&pointer, bytes), "spin_malloc");
    return pointer;
}

void upload_random(void* device, size_t floats, uint32_t seed) {
    std::vector<float> host(floats);
    uint32_t state = seed;
    for (float& value : host) {
        state = state * 1664525u + 1013904223u;
        value = static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    check(spin_memcpy(device, host.data(), floats * sizeof(float), SPIN_MEMCPY_HOST_TO_DEVICE, nullptr),
          "spin_memcpy");
    check(spin_stream_synchronize(nullptr), "spin_stream_synchronize");
}

void time_kernel(const char* name, double bytes_moved, int repeats, spin_stream_t stream,
                 const std::function<int()>& launch) {
    cudaStream_t cuda_stream = reinterpret_cast<cudaStream_t>(stream);
    for (int i = 0; i < 3; ++i) check(launch(), name);  // warm-up
    cudaEvent_t start, stop;
    check_cuda(cudaEventCreate(&start), "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
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
    std::printf("%-22s median %9.1f us  %8.1f GB/s  (min %.1f us, %d runs)\n", name, median,
                bytes_moved / (median * 1e-6) / 1e9, micros.front(), repeats);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
}

}  // namespace

int main(int argc, char** argv) {
    const int N = argc > 1 ? std::atoi(argv[1]) : 8 * 1024;
    const int C = argc > 2 ? std::atoi(argv[2]) : 4096;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 50;
    if (N <= 0 || C <= 0 || repeats <= 0) {
        std::fprintf(stderr, "usage: %s [N [C [repeats]]], all positive\n", argv[0]);
        return 2;
    }
    int device_count = 0;
    check(spin_device_count(&device_count), "spin_device_count");
    spin_device_props props;
    check(spin_device_properties(0, &props), "spin_device_properties");
    std::printf("device 0: %s (sm_%d%d, %d SMs); N=%d C=%d\n", props.name, props.compute_major,
                props.compute_minor, props.multiprocessor_count, N, C);

    const size_t elements = static_cast<size_t>(N) * C;
    const double f32_tensor = static_cast<double>(elements) * sizeof(float);
    const double bf16_tensor = static_cast<double>(elements) * sizeof(uint16_t);
    float* in = static_cast<float*>(device_alloc(elements * sizeof(float)));
    float* out = static_cast<float*>(device_alloc(elements * sizeof(float)));
    float* d_out = static_cast<float*>(device_alloc(elements * sizeof(float)));
    float* d_in = static_cast<float*>(device_alloc(elements * sizeof(float)));
    float* weight = static_cast<float*>(device_alloc(C * sizeof(float)));
    float* d_weight = static_cast<float*>(device_alloc(C * sizeof(float)));
    float* rstd = static_cast<float*>(device_alloc(N * sizeof(float)));
    uint16_t* bf16 = static_cast<uint16_t*>(device_alloc(elements * sizeof(uint16_t)));
    size_t scratch_bytes = 0;
    check(spin_rmsnorm_backward_scratch_bytes(N, C, &scratch_bytes), "spin_rmsnorm_backward_scratch_bytes");
    float* scratch = static_cast<float*>(device_alloc(scratch_bytes));
    upload_random(in, elements, 1);
    upload_random(d_out, elements, 2);
    upload_random(weight, C, 3);
    check(spin_memset_zero(d_weight, C * sizeof(float), nullptr), "spin_memset_zero");

    spin_stream_t stream = nullptr;
    check(spin_stream_create(&stream), "spin_stream_create");
    time_kernel("rmsnorm_forward", 2 * f32_tensor, repeats, stream,
                [&] { return spin_rmsnorm_forward(stream, out, rstd, in, weight, N, C, 1e-5f); });
    time_kernel("rmsnorm_backward", 3 * f32_tensor, repeats, stream, [&] {
        return spin_rmsnorm_backward(stream, d_in, d_weight, scratch, d_out, in, weight, rstd, N, C);
    });
    time_kernel("cast_f32_to_bf16", f32_tensor + bf16_tensor, repeats, stream,
                [&] { return spin_cast_f32_to_bf16(stream, bf16, in, elements); });
    time_kernel("cast_bf16_to_f32", f32_tensor + bf16_tensor, repeats, stream,
                [&] { return spin_cast_bf16_to_f32(stream, out, bf16, elements); });

    check(spin_stream_destroy(stream), "spin_stream_destroy");
    for (void* pointer : {static_cast<void*>(in), static_cast<void*>(out), static_cast<void*>(d_out),
                          static_cast<void*>(d_in), static_cast<void*>(weight), static_cast<void*>(d_weight),
                          static_cast<void*>(rstd), static_cast<void*>(bf16), static_cast<void*>(scratch)}) {
        check(spin_free(pointer), "spin_free");
    }
    return 0;
}
