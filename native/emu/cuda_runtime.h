// The CUDA emulator's <cuda_runtime.h>: what kernels/ and native/ use of CUDA, for the host C++
// compiler. The emulated build puts native/emu first on the include path, so the unchanged
// `#include <cuda_runtime.h>` of the sources lands here; nvcc builds never see this file.
//
// How a launch runs (docs/ARCHITECTURE.md, "CUDA emulator"): SPIN_LAUNCH calls spin_emu::launch,
// which runs the grid's blocks one after another on the calling thread; each block runs one fiber
// per CUDA thread, switching fibers only where CUDA threads must wait for each other
// (__syncthreads, warp collectives). Device memory is host memory; every stream runs its work at
// once, in order. Only what our kernels use is here: a kernel using anything else fails to compile.
#pragma once

#define SPIN_CUDA_EMULATOR 1

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// Everything here is internal to the module it is compiled into (the emulated library, or a test
// harness): nothing named cuda* may leak out and interpose on a real libcudart in the same process.
#define SPIN_EMU_API __attribute__((visibility("hidden")))

// ---- declaration specifiers --------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One block runs at a time per process (spin_emu::launch holds a lock), so a function-local static
// is exactly "one copy per block". The section collects every __shared__ variable of the module so
// that the runtime can poison them all with 0xff bytes (NaN as fp32) before each block: a read
// before any write in that block, e.g. behind a missing __syncthreads, sees NaN rather than an old
// block's value. The build passes -fsanitize-sections=spin_emu_shared so ASan still gives these
// arrays redzones.
#define __shared__ __attribute__((section("spin_emu_shared"))) static

constexpr int warpSize = 32;

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// ---- host API: errors, devices, streams, events, memory --------------------------------------
// Numeric values are CUDA's, so logs read the same.
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorStubLibrary = 34,
    cudaErrorInsufficientDriver = 35,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorLaunchFailure = 719,
    cudaErrorSystemDriverMismatch = 803,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

enum cudaDeviceAttr {
    cudaDevAttrMultiProcessorCount = 16,
};

enum cudaMemPoolAttr {
    cudaMemPoolAttrReservedMemCurrent = 5,
    cudaMemPoolAttrReservedMemHigh = 6,
    cudaMemPoolAttrUsedMemCurrent = 7,
    cudaMemPoolAttrUsedMemHigh = 8,
};

constexpr unsigned int cudaStreamDefault = 0x00;
constexpr unsigned int cudaStreamNonBlocking = 0x01;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int major;
    int minor;
    int multiProcessorCount;
};

typedef struct spin_emu_stream* cudaStream_t;
typedef struct spin_emu_event* cudaEvent_t;
typedef struct spin_emu_mem_pool* cudaMemPool_t;

SPIN_EMU_API cudaError_t cudaGetLastError();
SPIN_EMU_API cudaError_t cudaPeekAtLastError();
SPIN_EMU_API const char* cudaGetErrorName(cudaError_t error);
// CUDA's text for the error, followed by what the emulator found when it raised this error last
// on this thread (which block and thread deadlocked, the mask that did not match, ...).
SPIN_EMU_API const char* cudaGetErrorString(cudaError_t error);
SPIN_EMU_API cudaError_t cudaDriverGetVersion(int* version);
SPIN_EMU_API cudaError_t cudaRuntimeGetVersion(int* version);
SPIN_EMU_API cudaError_t cudaGetDeviceCount(int* count);
SPIN_EMU_API cudaError_t cudaGetDeviceProperties(cudaDeviceProp* props, int device);
SPIN_EMU_API cudaError_t cudaGetDevice(int* device);
// Only the attributes the kernels' launchers ask for; any other is cudaErrorInvalidValue.
SPIN_EMU_API cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
SPIN_EMU_API cudaError_t cudaSetDevice(int device);
SPIN_EMU_API cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
SPIN_EMU_API cudaError_t cudaDeviceSynchronize();

SPIN_EMU_API cudaError_t cudaStreamCreate(cudaStream_t* stream);
SPIN_EMU_API cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
SPIN_EMU_API cudaError_t cudaStreamDestroy(cudaStream_t stream);
SPIN_EMU_API cudaError_t cudaStreamSynchronize(cudaStream_t stream);
// cudaSuccess for a live stream (its work ran when queued), cudaErrorInvalidResourceHandle otherwise.
SPIN_EMU_API cudaError_t cudaStreamQuery(cudaStream_t stream);
SPIN_EMU_API cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);

constexpr unsigned int cudaEventDefault = 0x00;
constexpr unsigned int cudaEventDisableTiming = 0x02;
SPIN_EMU_API cudaError_t cudaEventCreate(cudaEvent_t* event);
// Flags are accepted and ignored: emulated events always carry a time.
SPIN_EMU_API cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
SPIN_EMU_API cudaError_t cudaEventDestroy(cudaEvent_t event);
SPIN_EMU_API cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
SPIN_EMU_API cudaError_t cudaEventSynchronize(cudaEvent_t event);
SPIN_EMU_API cudaError_t cudaEventQuery(cudaEvent_t event);
SPIN_EMU_API cudaError_t cudaEventElapsedTime(float* millis, cudaEvent_t start, cudaEvent_t end);

SPIN_EMU_API cudaError_t cudaMalloc(void** pointer, size_t bytes);
SPIN_EMU_API cudaError_t cudaFree(void* pointer);
// Page-locked host memory: ordinary host memory here (copies from it run when queued, as every
// copy does), but tracked as its own kind, so freeing it with cudaFree, or device memory with
// cudaFreeHost, fails as on a GPU.
SPIN_EMU_API cudaError_t cudaMallocHost(void** pointer, size_t bytes);
SPIN_EMU_API cudaError_t cudaFreeHost(void* pointer);
// Stream-ordered allocation from the device's one pool; its used/reserved current and high-water
// byte counts are what cudaMemPoolGetAttribute reports (the emulator reserves exactly what is used).
SPIN_EMU_API cudaError_t cudaMallocAsync(void** pointer, size_t bytes, cudaStream_t stream);
SPIN_EMU_API cudaError_t cudaFreeAsync(void* pointer, cudaStream_t stream);
SPIN_EMU_API cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device);
SPIN_EMU_API cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
// Only resetting a high-water mark (value 0) is supported, as in CUDA.
SPIN_EMU_API cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
// The emulator reserves nothing beyond what is used, so trimming has nothing to give back.
SPIN_EMU_API cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t min_bytes_to_keep);
SPIN_EMU_API cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
SPIN_EMU_API cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                         cudaStream_t stream = nullptr);
SPIN_EMU_API cudaError_t cudaMemset(void* dst, int value, size_t bytes);
SPIN_EMU_API cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);

namespace spin_emu {

// ---- the launch --------------------------------------------------------------------------------

// The CUDA built-ins of the thread now running, set by the scheduler before it enters a fiber.
struct Builtins {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};
SPIN_EMU_API extern thread_local const Builtins* current_builtins;

// Runs body(thread) for every thread of every block, as described at the top of this file.
// Failures (bad configuration, deadlock, a warp collective with mismatched masks, ...) become the
// thread's last CUDA error, as a failed launch does on a GPU; the process never exits.
SPIN_EMU_API void run_grid(const char* kernel_name, const void* kernel_id, dim3 grid, dim3 block,
                           size_t dynamic_shared_bytes, cudaStream_t stream, const std::function<void()>& body);

SPIN_EMU_API cudaError_t set_max_dynamic_shared(const void* kernel_id, int bytes);

// The device `stream` belongs to (NULL: the calling thread's current device), for the NCCL
// stand-in, which checks that a collective is queued on its communicator's device as NCCL does.
// cudaErrorInvalidResourceHandle when the stream is not live.
SPIN_EMU_API cudaError_t stream_device(cudaStream_t stream, int* device);

// The launch SPIN_LAUNCH expands to: the arguments are converted to the kernel's parameter types
// once, as a <<<>>> launch copies them into the kernel's parameter space, and every CUDA thread
// calls the kernel on that same copy.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), const char* name, dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
    const std::tuple<std::decay_t<Params>...> parameters(std::forward<Args>(args)...);
    run_grid(name, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes, stream,
             [&] { std::apply(kernel, parameters); });
}

// extern __shared__: the block's dynamic shared memory (poisoned like static shared memory).
SPIN_EMU_API void* dynamic_shared();

// ---- what CUDA threads do together -------------------------------------------------------------
SPIN_EMU_API void syncthreads();

// A warp collective: every lane of `mask` must call it with the same kind; the last one to arrive
// computes every lane's result. Words are 32-bit registers (shuffles, votes, mma fragments).
enum class WarpOp : int {
    syncwarp,
    shfl_idx,
    shfl_up,
    shfl_down,
    shfl_xor,
    ballot,
    mma_m16n8k16_bf16,
    ldmatrix,
};
constexpr int WARP_WORDS = 16;
SPIN_EMU_API void warp_collective(WarpOp op, unsigned mask, int parameter, const uint32_t* in, int in_words,
                                  uint32_t* out, int out_words);

// cp.async: the copy is taken at issue and lands at the wait; until then the destination holds
// poison, so a read that the missing wait would let race on a GPU sees NaN here.
SPIN_EMU_API void cp_async(void* shared_dst, const void* global_src, int bytes, int src_bytes);
SPIN_EMU_API void cp_async_commit();
SPIN_EMU_API void cp_async_wait(int pending_groups_allowed);

// Only one kernel block runs at a time and a fiber switch is a full compiler barrier, so plain
// read-modify-write is atomic with respect to every other CUDA thread.
template <class T>
T atomic_update(T* address, T value, T (*combine)(T, T)) {
    const T old = *address;
    *address = combine(old, value);
    return old;
}

template <class T>
uint64_t to_bits64(T value) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
}

template <class T>
T from_bits64(uint64_t bits) {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}

template <class T>
T shuffle(WarpOp op, unsigned mask, T value, int parameter, int width) {
    const uint64_t bits = to_bits64(value);
    // in: value (2 words), width; out: the chosen lane's value.
    const uint32_t in[3] = {static_cast<uint32_t>(bits), static_cast<uint32_t>(bits >> 32),
                            static_cast<uint32_t>(width)};
    uint32_t out[2] = {0, 0};
    warp_collective(op, mask, parameter, in, 3, out, 2);
    return from_bits64<T>(static_cast<uint64_t>(out[0]) | static_cast<uint64_t>(out[1]) << 32);
}

}  // namespace spin_emu

#define threadIdx (::spin_emu::current_builtins->thread_idx)
#define blockIdx (::spin_emu::current_builtins->block_idx)
#define blockDim (::spin_emu::current_builtins->block_dim)
#define gridDim (::spin_emu::current_builtins->grid_dim)

template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attribute, int value) {
    if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
    return spin_emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
}

// ---- device functions ----------------------------------------------------------------------------
inline void __syncthreads() { spin_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    spin_emu::warp_collective(spin_emu::WarpOp::syncwarp, mask, 0, nullptr, 0, nullptr, 0);
}
// Fibers interleave only at the calls above, so every write is visible to every later read.
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = warpSize) {
    return spin_emu::shuffle(spin_emu::WarpOp::shfl_idx, mask, value, src_lane, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T value, unsigned int delta, int width = warpSize) {
    return spin_emu::shuffle(spin_emu::WarpOp::shfl_up, mask, value, static_cast<int>(delta), width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned int delta, int width = warpSize) {
    return spin_emu::shuffle(spin_emu::WarpOp::shfl_down, mask, value, static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
    return spin_emu::shuffle(spin_emu::WarpOp::shfl_xor, mask, value, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    const uint32_t in = predicate != 0;
    uint32_t out = 0;
    spin_emu::warp_collective(spin_emu::WarpOp::ballot, mask, 0, &in, 1, &out, 1);
    return out;
}
// A mask names only lanes that exist (the collective checks), so "all" is "every lane of mask".
inline int __all_sync(unsigned mask, int predicate) { return (__ballot_sync(mask, predicate) & mask) == mask; }
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }

inline unsigned int __float_as_uint(float x) { unsigned int u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned int u) { float x; std::memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
template <class T>
T __ldg(const T* p) { return *p; }
// IEEE round-to-nearest arithmetic, which nvcc never fuses into an FMA (kernels/optimizer.cu,
// kernels/spin_loss.cu and kernels/rope.cu rely on that to round as Java does). A product goes through a volatile so
// that the host compiler cannot fuse it either, on targets where it would (-ffp-contract=fast).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { volatile float product = a * b; return product; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline double __dmul_rn(double a, double b) { volatile double product = a * b; return product; }

// CUDA's global min/max overloads for device code.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

#define SPIN_EMU_ATOMIC(name, type, expression)                                              \
    inline type name(type* address, type value) {                                            \
        return spin_emu::atomic_update<type>(address, value, [](type a, type b) -> type { return expression; }); \
    }
SPIN_EMU_ATOMIC(atomicAdd, int, a + b)
SPIN_EMU_ATOMIC(atomicAdd, unsigned int, a + b)
SPIN_EMU_ATOMIC(atomicAdd, unsigned long long, a + b)
SPIN_EMU_ATOMIC(atomicAdd, float, a + b)
SPIN_EMU_ATOMIC(atomicAdd, double, a + b)
SPIN_EMU_ATOMIC(atomicSub, int, a - b)
SPIN_EMU_ATOMIC(atomicSub, unsigned int, a - b)
SPIN_EMU_ATOMIC(atomicMax, int, a > b ? a : b)
SPIN_EMU_ATOMIC(atomicMax, unsigned int, a > b ? a : b)
SPIN_EMU_ATOMIC(atomicMin, int, a < b ? a : b)
SPIN_EMU_ATOMIC(atomicMin, unsigned int, a < b ? a : b)
SPIN_EMU_ATOMIC(atomicExch, int, ((void)a, b))
SPIN_EMU_ATOMIC(atomicExch, unsigned int, ((void)a, b))
SPIN_EMU_ATOMIC(atomicExch, float, ((void)a, b))
SPIN_EMU_ATOMIC(atomicAnd, unsigned int, a & b)
SPIN_EMU_ATOMIC(atomicOr, unsigned int, a | b)
SPIN_EMU_ATOMIC(atomicXor, unsigned int, a ^ b)
#undef SPIN_EMU_ATOMIC
inline int atomicCAS(int* address, int compare, int value) {
    const int old = *address;
    if (old == compare) *address = value;
    return old;
}
inline unsigned int atomicCAS(unsigned int* address, unsigned int compare, unsigned int value) {
    const unsigned int old = *address;
    if (old == compare) *address = value;
    return old;
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long value) {
    const unsigned long long old = *address;
    if (old == compare) *address = value;
    return old;
}
