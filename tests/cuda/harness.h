// Host side of the native kernel tests (tests/cuda): reporting, device buffers, random inputs,
// error measures, and the registry through which each op family's file (tests/cuda/<op>_test.cu)
// adds its checks to the one executable (spin_emu_tests under the emulator, spin_kernel_tests on a GPU).
#pragma once

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>

#include "spin_native.h"

namespace spin_test {

inline int failures = 0;

inline void report(bool ok, const char* format, ...) __attribute__((format(printf, 2, 3)));
inline void report(bool ok, const char* format, ...) {
    va_list args;
    va_start(args, format);
    std::printf("%s ", ok ? "ok  " : "FAIL");
    std::vprintf(format, args);
    std::printf("\n");
    va_end(args);
    if (!ok) ++failures;
}

inline void must(cudaError_t error, const char* call) {
    if (error != cudaSuccess) {
        std::printf("FAIL %s: %s: %s\n", call, cudaGetErrorName(error), cudaGetErrorString(error));
        std::exit(1);
    }
}

inline void must(int status, const char* call) {
    if (status != SPIN_OK) {
        std::printf("FAIL %s: %s\n", call, spin_last_error());
        std::exit(1);
    }
}

template <class T>
T* device_copy(const std::vector<T>& host) {
    void* device = nullptr;
    must(cudaMalloc(&device, host.size() * sizeof(T)), "cudaMalloc");
    must(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
    return static_cast<T*>(device);
}

// Device memory holding NaN (all-ones bits), so an element a kernel fails to write shows up.
template <class T>
T* device_poisoned(size_t count) {
    void* device = nullptr;
    must(cudaMalloc(&device, count * sizeof(T)), "cudaMalloc");
    must(cudaMemset(device, 0xff, count * sizeof(T)), "cudaMemset");
    return static_cast<T*>(device);
}

template <class T>
std::vector<T> host_copy(const T* device, size_t count) {
    std::vector<T> host(count);
    must(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    must(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return host;
}

inline uint32_t rng_state = 12345;
inline float uniform() {  // in [-1, 1)
    rng_state = rng_state * 1664525u + 1013904223u;
    return static_cast<float>(rng_state >> 8) / 8388608.0f - 1.0f;
}

inline std::vector<float> random_floats(size_t count, float scale = 1.0f) {
    std::vector<float> values(count);
    for (float& v : values) v = uniform() * scale;
    return values;
}

// Relative L2 error of actual against an fp64 reference; NaN when anything is NaN.
inline double relative_error(const std::vector<double>& expected, const std::vector<float>& actual) {
    double error = 0, norm = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
        error += (actual[i] - expected[i]) * (actual[i] - expected[i]);
        norm += expected[i] * expected[i];
    }
    return std::sqrt(error / norm);
}

// The largest |actual - expected| / (atol + rtol * |expected|) over all elements (> 1 fails):
// a per-element bound, which a relative L2 norm over many elements cannot give. NaN counts as inf.
inline double worst_ratio(const std::vector<double>& expected, const std::vector<float>& actual, double atol,
                          double rtol) {
    double worst = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
        const double ratio = std::fabs(actual[i] - expected[i]) / (atol + rtol * std::fabs(expected[i]));
        if (!(ratio <= worst)) worst = std::isnan(ratio) ? INFINITY : ratio;
    }
    return worst;
}

inline uint16_t bf16_bits(float value) {  // round to nearest even; inputs here are finite
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline float bf16_value(uint16_t bits) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &wide, 4);
    return value;
}

// ---- operands in an op's compute dtype (enum spin_dtype) -------------------------------------------

inline const char* dtype_name(int dtype) { return dtype == SPIN_DTYPE_BF16 ? "bf16" : "fp32"; }

inline size_t dtype_bytes(int dtype) { return dtype == SPIN_DTYPE_BF16 ? 2 : 4; }

// The values as the kernel sees them: rounded to bf16 for SPIN_DTYPE_BF16, so that the host
// reference computes on exactly the kernel's inputs.
inline std::vector<float> representable(std::vector<float> values, int dtype) {
    if (dtype == SPIN_DTYPE_BF16) {
        for (float& v : values) v = bf16_value(bf16_bits(v));
    }
    return values;
}

// A device copy of values in dtype (values already representable()).
inline void* device_typed(const std::vector<float>& values, int dtype) {
    if (dtype == SPIN_DTYPE_F32) return device_copy(values);
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = bf16_bits(values[i]);
    return device_copy(bits);
}

// count elements of dtype holding NaN (all-ones bits).
inline void* device_poisoned_typed(size_t count, int dtype) {
    return dtype == SPIN_DTYPE_F32 ? static_cast<void*>(device_poisoned<float>(count))
                                   : static_cast<void*>(device_poisoned<uint16_t>(count));
}

inline std::vector<float> host_typed(const void* device, size_t count, int dtype) {
    if (dtype == SPIN_DTYPE_F32) return host_copy(static_cast<const float*>(device), count);
    const std::vector<uint16_t> bits = host_copy(static_cast<const uint16_t*>(device), count);
    std::vector<float> values(count);
    for (size_t i = 0; i < count; ++i) values[i] = bf16_value(bits[i]);
    return values;
}

// The relative L2 error of the naive bf16 computation: the exact values, each rounded once to bf16.
inline double bf16_rounding_error(const std::vector<double>& expected) {
    std::vector<float> rounded(expected.size());
    for (size_t i = 0; i < expected.size(); ++i) rounded[i] = bf16_value(bf16_bits(static_cast<float>(expected[i])));
    return relative_error(expected, rounded);
}

// The largest relative error of rounding a value once to dtype, for per-element bounds: half a bf16
// ulp, at most 2^-8 of the value (8 significant bits); 0 for fp32, whose rounding a test's own fp32
// tolerance already covers. A kernel that computes in fp32 and rounds once is within this plus its
// fp32 error.
inline double rounding_rtol(int dtype) { return dtype == SPIN_DTYPE_BF16 ? 0x1p-8 : 0.0; }

// Whether an output's relative L2 error against the fp64 reference passes: in fp32 below
// fp32_limit; in bf16 within factor times the error of a naive bf16 computation, one that computes
// exactly and rounds its output once (DESIGN section 4: 2x for outputs, 3x for gradients), plus
// fp32_limit for the fp32 arithmetic before the rounding.
inline bool within_dtype_tolerance(double error, const std::vector<double>& expected, int dtype, double fp32_limit,
                                   double factor) {
    if (dtype == SPIN_DTYPE_F32) return error < fp32_limit;
    return error <= factor * bf16_rounding_error(expected) + fp32_limit;
}

// ---- the registry of product-kernel checks ----------------------------------------------------------

struct KernelCheck {
    const char* family;
    void (*run)();
};

inline std::vector<KernelCheck>& kernel_checks() {
    static std::vector<KernelCheck> checks;
    return checks;
}

struct RegisterKernelCheck {
    RegisterKernelCheck(const char* family, void (*run)()) { kernel_checks().push_back({family, run}); }
};

}  // namespace spin_test

// Defines the function that checks one op family through the C ABI and adds it to the registry,
// which run_all (tests/cuda/kernel_tests.cu) runs in family-name order:
//   SPIN_KERNEL_CHECKS(rope) { for (shape : edge shapes) check_rope(shape); }
#define SPIN_KERNEL_CHECKS(family)                                                                    \
    static void family##_checks();                                                                    \
    static const ::spin_test::RegisterKernelCheck family##_registered(#family, family##_checks);     \
    static void family##_checks()
