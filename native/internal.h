// Helpers shared by the launchers in native/ and kernels/: error reporting and handle casts.
#pragma once

#include <cuda_runtime.h>

#include "spin_native.h"

namespace spin {

// Records the failure text for spin_last_error() and returns status, so callers can write
// `return fail(SPIN_ERR_INVALID_ARG, "...")`.
int fail(int status, const char* format, ...) __attribute__((format(printf, 2, 3)));

// SPIN_OK for cudaSuccess; otherwise records "<call> returned <error name> (<message>)" and
// returns the status the error maps to (no driver or device, out of memory, any other CUDA error).
int cuda_status(cudaError_t error, const char* call);

inline cudaStream_t to_cuda(spin_stream_t stream) {
    return reinterpret_cast<cudaStream_t>(stream);
}

}  // namespace spin

// Returns the mapped status from the enclosing function when a CUDA call fails.
#define SPIN_CUDA_TRY(call)                                        \
    do {                                                           \
        const int spin_status_ = spin::cuda_status((call), #call); \
        if (spin_status_ != SPIN_OK) return spin_status_;          \
    } while (0)

// Every kernel launch goes through this one macro, which both compilers parse: nvcc gets the
// <<<>>> launch; the host compiler building the emulated library (native/emu/cuda_runtime.h defines
// SPIN_CUDA_EMULATOR) gets a call that runs the grid as fibers. Launchers stay identical for both.
#ifdef SPIN_CUDA_EMULATOR
#define SPIN_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
    ::spin_emu::launch(kernel, #kernel, grid, block, shared_bytes, stream, ##__VA_ARGS__)
// `extern __shared__` has no host C++ spelling: the emulator hands out the block's buffer.
#define SPIN_DYNAMIC_SHARED(type, name) type* const name = static_cast<type*>(::spin_emu::dynamic_shared())
#else
#define SPIN_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
    kernel<<<grid, block, shared_bytes, stream>>>(__VA_ARGS__)
#define SPIN_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) type name[]
#endif

// A kernel launch reports bad configurations only through cudaGetLastError.
#define SPIN_LAUNCH_CHECK(kernel)                                                      \
    do {                                                                               \
        const int spin_status_ = spin::cuda_status(cudaGetLastError(), #kernel "<<<>>>"); \
        if (spin_status_ != SPIN_OK) return spin_status_;                              \
    } while (0)
