/*
 * spin_native: the one C ABI that the Java engine binds through Panama (java/spin/nativebind).
 *
 * Conventions for every entry point:
 *   - returns an int status: SPIN_OK (0) or one of the SPIN_ERR_* codes below;
 *   - on failure, spin_last_error() holds a description (the failing call, and for CUDA errors the
 *     error name and message) for the calling thread until its next failure;
 *   - results come back through pointer arguments; nothing here ever exits or aborts the process;
 *   - work taking a spin_stream_t is queued on that stream and may still be running on return;
 *     a NULL stream means CUDA's legacy default stream.
 * Device pointers are plain addresses from spin_malloc.
 */
#ifndef SPIN_NATIVE_H
#define SPIN_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPIN_EXPORT __attribute__((visibility("default")))

/* Bumped whenever an entry point or struct below changes, so Java refuses a stale library. */
#define SPIN_ABI_VERSION 1

enum spin_status {
    SPIN_OK = 0,
    SPIN_ERR_INVALID_ARG = 1,
    /* CUDA cannot be used on this machine at all: no driver, a driver older than the runtime,
       a stub driver, or no device. Callers treat this as "no GPU", not as a fault. */
    SPIN_ERR_NO_DEVICE = 2,
    SPIN_ERR_OUT_OF_MEMORY = 3,
    SPIN_ERR_CUDA = 4
};

enum spin_memcpy_kind {
    SPIN_MEMCPY_HOST_TO_DEVICE = 1,
    SPIN_MEMCPY_DEVICE_TO_HOST = 2,
    SPIN_MEMCPY_DEVICE_TO_DEVICE = 3
};

typedef struct spin_stream_s* spin_stream_t;

#define SPIN_DEVICE_NAME_BYTES 256
#define SPIN_LAST_ERROR_BYTES 1024

typedef struct spin_device_props {
    char name[SPIN_DEVICE_NAME_BYTES]; /* NUL-terminated */
    size_t total_memory_bytes;
    size_t free_memory_bytes;
    int compute_major;
    int compute_minor;
    int multiprocessor_count;
} spin_device_props;

/* ---- errors and versions ---------------------------------------------------------------- */

/* Text of this thread's most recent failure; at most SPIN_LAST_ERROR_BYTES including the NUL. */
SPIN_EXPORT const char* spin_last_error(void);
SPIN_EXPORT int spin_abi_version(void);
/* CUDA versions as 1000 * major + 10 * minor; the driver version is 0 when no driver is installed. */
SPIN_EXPORT int spin_driver_version(int* out);
SPIN_EXPORT int spin_runtime_version(int* out);

/* ---- devices ---------------------------------------------------------------------------- */

/* SPIN_ERR_NO_DEVICE (not a zero count) when CUDA is unusable, with the reason in spin_last_error. */
SPIN_EXPORT int spin_device_count(int* out);
/* Also reports free memory, which makes the device's primary context current on this thread. */
SPIN_EXPORT int spin_device_properties(int device, spin_device_props* out);

/* ---- streams ---------------------------------------------------------------------------- */

/* A stream that does not synchronise with the legacy default stream. */
SPIN_EXPORT int spin_stream_create(spin_stream_t* out);
SPIN_EXPORT int spin_stream_destroy(spin_stream_t stream);
SPIN_EXPORT int spin_stream_synchronize(spin_stream_t stream);

/* ---- memory ----------------------------------------------------------------------------- */

/* bytes == 0 gives NULL. */
SPIN_EXPORT int spin_malloc(void** out, size_t bytes);
/* NULL is accepted and ignored. */
SPIN_EXPORT int spin_free(void* pointer);
/* Queued on the stream. With pageable host memory CUDA may copy synchronously; callers that
   free or reuse host memory must synchronise the stream first. */
SPIN_EXPORT int spin_memcpy(void* dst, const void* src, size_t bytes, int kind, spin_stream_t stream);
SPIN_EXPORT int spin_memset_zero(void* dst, size_t bytes, spin_stream_t stream);

/* ---- kernels: RMSNorm (kernels/rmsnorm.cu) ----------------------------------------------- */

/*
 * out[N,C] = in[N,C] * rstd[n] * weight[C], rstd[N] = 1 / sqrt(mean(in[n,:]^2) + eps), all fp32.
 * N == 0 does nothing.
 */
SPIN_EXPORT int spin_rmsnorm_forward(spin_stream_t stream, float* out, float* rstd, const float* in,
                                     const float* weight, int N, int C, float eps);

/* Bytes of device scratch that spin_rmsnorm_backward needs for these shapes. */
SPIN_EXPORT int spin_rmsnorm_backward_scratch_bytes(int N, int C, size_t* out);

/*
 * dIn[N,C] = d loss / d in (overwritten); dWeight[C] += d loss / d weight (accumulated), from
 * dOut[N,C], the forward's in, weight and rstd[N]. Deterministic: dWeight is summed in a fixed
 * order that depends on N and C only. scratch: spin_rmsnorm_backward_scratch_bytes(N, C) bytes.
 */
SPIN_EXPORT int spin_rmsnorm_backward(spin_stream_t stream, float* dIn, float* dWeight, float* scratch,
                                      const float* dOut, const float* in, const float* weight,
                                      const float* rstd, int N, int C);

/* ---- kernels: casts (kernels/cast.cu) ---------------------------------------------------- */

/* bf16 values are raw bit patterns. fp32 -> bf16 rounds to nearest even; a NaN stays NaN
   (quieted, sign and upper payload kept). bf16 -> fp32 is exact. */
SPIN_EXPORT int spin_cast_f32_to_bf16(spin_stream_t stream, uint16_t* out, const float* in, size_t count);
SPIN_EXPORT int spin_cast_bf16_to_f32(spin_stream_t stream, float* out, const uint16_t* in, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* SPIN_NATIVE_H */
