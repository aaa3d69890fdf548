// Error text, versions, devices, streams and memory: the plumbing half of spin_native.h.
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "internal.h"

static_assert(sizeof(spin_device_props) == 288, "Java's DeviceProperties layout mirrors this struct");
static_assert(offsetof(spin_device_props, total_memory_bytes) == 256, "Java layout");
static_assert(offsetof(spin_device_props, multiprocessor_count) == 280, "Java layout");
static_assert(int{SPIN_MEMCPY_HOST_TO_DEVICE} == int{cudaMemcpyHostToDevice} &&
                  int{SPIN_MEMCPY_DEVICE_TO_HOST} == int{cudaMemcpyDeviceToHost} &&
                  int{SPIN_MEMCPY_DEVICE_TO_DEVICE} == int{cudaMemcpyDeviceToDevice},
              "spin_memcpy passes its kind straight to CUDA");

namespace {

thread_local char last_error[SPIN_LAST_ERROR_BYTES] = "";

// Why CUDA is unusable here, for the errors that mean "no GPU" rather than a fault.
const char* no_device_reason(cudaError_t error) {
    switch (error) {
        case cudaErrorInsufficientDriver:
            return "no CUDA driver, or one older than this CUDA runtime";
        case cudaErrorNoDevice:
            return "no CUDA device";
        case cudaErrorStubLibrary:
            return "only the CUDA driver stub library is installed";
        case cudaErrorSystemDriverMismatch:
            return "the CUDA driver library and kernel module versions differ";
        default:
            return nullptr;
    }
}

int require_out(const void* out, const char* call) {
    return out == nullptr ? spin::fail(SPIN_ERR_INVALID_ARG, "%s: output pointer is NULL", call) : SPIN_OK;
}

// The default pool of the device current on this thread, which cudaMallocAsync allocates from.
int current_pool(cudaMemPool_t* pool) {
    int device = 0;
    SPIN_CUDA_TRY(cudaGetDevice(&device));
    SPIN_CUDA_TRY(cudaDeviceGetDefaultMemPool(pool, device));
    return SPIN_OK;
}

}  // namespace

namespace spin {

int fail(int status, const char* format, ...) {
    va_list args;
    va_start(args, format);
    std::vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

int cuda_status(cudaError_t error, const char* call) {
    if (error == cudaSuccess) return SPIN_OK;
    // CUDA also keeps the error as this thread's "last error"; clear it, or the next launch check
    // (cudaGetLastError) would report this already-handled failure again. Sticky errors persist.
    cudaGetLastError();
    const char* name = cudaGetErrorName(error);
    const char* message = cudaGetErrorString(error);
    if (const char* reason = no_device_reason(error)) {
        return fail(SPIN_ERR_NO_DEVICE, "%s: %s returned %s (%s)", reason, call, name, message);
    }
    const int status = error == cudaErrorMemoryAllocation ? SPIN_ERR_OUT_OF_MEMORY : SPIN_ERR_CUDA;
    return fail(status, "%s returned %s (%s)", call, name, message);
}

}  // namespace spin

extern "C" {

const char* spin_last_error(void) { return last_error; }

int spin_abi_version(void) { return SPIN_ABI_VERSION; }

int spin_driver_version(int* out) {
    if (int status = require_out(out, "spin_driver_version")) return status;
    SPIN_CUDA_TRY(cudaDriverGetVersion(out));
    return SPIN_OK;
}

int spin_runtime_version(int* out) {
    if (int status = require_out(out, "spin_runtime_version")) return status;
    SPIN_CUDA_TRY(cudaRuntimeGetVersion(out));
    return SPIN_OK;
}

int spin_device_count(int* out) {
    if (int status = require_out(out, "spin_device_count")) return status;
    int count = 0;
    SPIN_CUDA_TRY(cudaGetDeviceCount(&count));
    if (count == 0) return spin::fail(SPIN_ERR_NO_DEVICE, "no CUDA device (cudaGetDeviceCount returned 0)");
    *out = count;
    return SPIN_OK;
}

int spin_device_properties(int device, spin_device_props* out) {
    if (int status = require_out(out, "spin_device_properties")) return status;
    cudaDeviceProp props;
    SPIN_CUDA_TRY(cudaGetDeviceProperties(&props, device));
    int previous = 0;
    SPIN_CUDA_TRY(cudaGetDevice(&previous));
    SPIN_CUDA_TRY(cudaSetDevice(device));
    size_t free_bytes = 0, total_bytes = 0;
    const cudaError_t info = cudaMemGetInfo(&free_bytes, &total_bytes);
    SPIN_CUDA_TRY(cudaSetDevice(previous));
    SPIN_CUDA_TRY(info);

    std::memset(out, 0, sizeof *out);
    std::snprintf(out->name, sizeof out->name, "%s", props.name);
    out->total_memory_bytes = props.totalGlobalMem;
    out->free_memory_bytes = free_bytes;
    out->compute_major = props.major;
    out->compute_minor = props.minor;
    out->multiprocessor_count = props.multiProcessorCount;
    return SPIN_OK;
}

int spin_set_device(int device) {
    SPIN_CUDA_TRY(cudaSetDevice(device));
    return SPIN_OK;
}

int spin_stream_create(spin_stream_t* out) {
    if (int status = require_out(out, "spin_stream_create")) return status;
    cudaStream_t stream = nullptr;
    SPIN_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    *out = reinterpret_cast<spin_stream_t>(stream);
    return SPIN_OK;
}

int spin_stream_destroy(spin_stream_t stream) {
    if (stream == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_stream_destroy: NULL stream");
    SPIN_CUDA_TRY(cudaStreamDestroy(spin::to_cuda(stream)));
    return SPIN_OK;
}

int spin_stream_synchronize(spin_stream_t stream) {
    SPIN_CUDA_TRY(cudaStreamSynchronize(spin::to_cuda(stream)));
    return SPIN_OK;
}

int spin_malloc(void** out, size_t bytes) {
    if (int status = require_out(out, "spin_malloc")) return status;
    *out = nullptr;
    if (bytes == 0) return SPIN_OK;
    char call[64];
    std::snprintf(call, sizeof call, "cudaMalloc(%zu bytes)", bytes);
    return spin::cuda_status(cudaMalloc(out, bytes), call);
}

int spin_free(void* pointer) {
    SPIN_CUDA_TRY(cudaFree(pointer));
    return SPIN_OK;
}

int spin_memcpy(void* dst, const void* src, size_t bytes, int kind, spin_stream_t stream) {
    if (kind != SPIN_MEMCPY_HOST_TO_DEVICE && kind != SPIN_MEMCPY_DEVICE_TO_HOST &&
        kind != SPIN_MEMCPY_DEVICE_TO_DEVICE) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_memcpy: unknown kind %d", kind);
    }
    if (bytes == 0) return SPIN_OK;
    if (dst == nullptr || src == nullptr) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_memcpy: NULL %s for %zu bytes", dst ? "src" : "dst", bytes);
    }
    SPIN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, static_cast<cudaMemcpyKind>(kind), spin::to_cuda(stream)));
    return SPIN_OK;
}

int spin_memset_zero(void* dst, size_t bytes, spin_stream_t stream) {
    if (bytes == 0) return SPIN_OK;
    if (dst == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_memset_zero: NULL dst for %zu bytes", bytes);
    SPIN_CUDA_TRY(cudaMemsetAsync(dst, 0, bytes, spin::to_cuda(stream)));
    return SPIN_OK;
}

int spin_host_alloc(void** out, size_t bytes) {
    if (int status = require_out(out, "spin_host_alloc")) return status;
    *out = nullptr;
    if (bytes == 0) return SPIN_OK;
    char call[64];
    std::snprintf(call, sizeof call, "cudaMallocHost(%zu bytes)", bytes);
    return spin::cuda_status(cudaMallocHost(out, bytes), call);
}

int spin_host_free(void* pointer) {
    SPIN_CUDA_TRY(cudaFreeHost(pointer));
    return SPIN_OK;
}

int spin_malloc_async(void** out, size_t bytes, spin_stream_t stream) {
    if (int status = require_out(out, "spin_malloc_async")) return status;
    *out = nullptr;
    if (bytes == 0) return SPIN_OK;
    char call[64];
    std::snprintf(call, sizeof call, "cudaMallocAsync(%zu bytes)", bytes);
    return spin::cuda_status(cudaMallocAsync(out, bytes, spin::to_cuda(stream)), call);
}

int spin_free_async(void* pointer, spin_stream_t stream) {
    if (pointer == nullptr) return SPIN_OK;
    SPIN_CUDA_TRY(cudaFreeAsync(pointer, spin::to_cuda(stream)));
    return SPIN_OK;
}

int spin_pool_usage(size_t* current_bytes, size_t* peak_bytes) {
    if (int status = require_out(current_bytes, "spin_pool_usage")) return status;
    if (int status = require_out(peak_bytes, "spin_pool_usage")) return status;
    cudaMemPool_t pool = nullptr;
    if (int status = current_pool(&pool)) return status;
    uint64_t current = 0, peak = 0;
    SPIN_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &current));
    SPIN_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &peak));
    *current_bytes = current;
    *peak_bytes = peak;
    return SPIN_OK;
}

int spin_pool_reset_peak(void) {
    cudaMemPool_t pool = nullptr;
    if (int status = current_pool(&pool)) return status;
    uint64_t zero = 0;
    SPIN_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
    return SPIN_OK;
}

int spin_pool_trim(size_t keep_bytes) {
    cudaMemPool_t pool = nullptr;
    if (int status = current_pool(&pool)) return status;
    SPIN_CUDA_TRY(cudaMemPoolTrimTo(pool, keep_bytes));
    return SPIN_OK;
}

int spin_event_create(spin_event_t* out) {
    if (int status = require_out(out, "spin_event_create")) return status;
    cudaEvent_t event = nullptr;
    // Events that only order streams need no timing, which makes recording them cheaper.
    SPIN_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    *out = reinterpret_cast<spin_event_t>(event);
    return SPIN_OK;
}

int spin_timing_event_create(spin_event_t* out) {
    if (int status = require_out(out, "spin_timing_event_create")) return status;
    cudaEvent_t event = nullptr;
    SPIN_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDefault));
    *out = reinterpret_cast<spin_event_t>(event);
    return SPIN_OK;
}

int spin_event_elapsed_ms(spin_event_t start, spin_event_t end, float* millis) {
    if (start == nullptr || end == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_event_elapsed_ms: NULL event");
    if (int status = require_out(millis, "spin_event_elapsed_ms")) return status;
    SPIN_CUDA_TRY(cudaEventElapsedTime(millis, reinterpret_cast<cudaEvent_t>(start), reinterpret_cast<cudaEvent_t>(end)));
    return SPIN_OK;
}

int spin_event_destroy(spin_event_t event) {
    if (event == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_event_destroy: NULL event");
    SPIN_CUDA_TRY(cudaEventDestroy(reinterpret_cast<cudaEvent_t>(event)));
    return SPIN_OK;
}

int spin_event_record(spin_event_t event, spin_stream_t stream) {
    if (event == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_event_record: NULL event");
    SPIN_CUDA_TRY(cudaEventRecord(reinterpret_cast<cudaEvent_t>(event), spin::to_cuda(stream)));
    return SPIN_OK;
}

int spin_event_query(spin_event_t event, int* complete) {
    if (event == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_event_query: NULL event");
    if (int status = require_out(complete, "spin_event_query")) return status;
    const cudaError_t state = cudaEventQuery(reinterpret_cast<cudaEvent_t>(event));
    if (state == cudaErrorNotReady) {
        // "Not yet" is an answer, not a failure; it must not linger as the thread's last error,
        // which the next launch check reads.
        cudaGetLastError();
        *complete = 0;
        return SPIN_OK;
    }
    SPIN_CUDA_TRY(state);
    *complete = 1;
    return SPIN_OK;
}

int spin_event_synchronize(spin_event_t event) {
    if (event == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_event_synchronize: NULL event");
    SPIN_CUDA_TRY(cudaEventSynchronize(reinterpret_cast<cudaEvent_t>(event)));
    return SPIN_OK;
}

int spin_stream_wait_event(spin_stream_t stream, spin_event_t event) {
    if (event == nullptr) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_stream_wait_event: NULL event");
    SPIN_CUDA_TRY(cudaStreamWaitEvent(spin::to_cuda(stream), reinterpret_cast<cudaEvent_t>(event), 0));
    return SPIN_OK;
}

}  // extern "C"
