// The tensor-core attention forward (kernels/attention_mma.cu), which spin_attention_forward
// (kernels/attention.cu) dispatches to for the shapes it covers; everything else keeps the simple
// kernel, which also stays callable on its own as spin_attention_forward_simple.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

namespace spin {

// True when the tensor-core kernels take these operands: bf16, head dim 64 or 128, and every one of
// `tensors` (inputs and outputs) 16-byte aligned (cp.async and the output stores move 16-byte
// chunks; a view at an odd offset would fault).
bool attention_mma_supports(int dtype, int D, std::initializer_list<const void*> tensors);

// out, q [B,T,H,D] bf16; k, v [B,T,KVH,D] bf16; keyMask [B,T]; lse [B,H,T] fp32. The semantics of
// spin_attention_forward (spin_native.h); the caller has checked the shape and the pointers, and
// that attention_mma_supports them. Returns a spin status.
int attention_forward_mma(cudaStream_t stream, void* out, float* lse, const void* q, const void* k, const void* v,
                          const int32_t* keyMask, int B, int T, int H, int KVH, int D, int window);

// The dq pass of the backward on tensor cores: dq [B,T,H,D] overwritten, from dOut, q [B,T,H,D],
// k, v [B,T,KVH,D] (bf16), lse and delta = dOut . out [B,H,T] (fp32), for the operands that
// attention_mma_supports (checked on every tensor by the caller).
int attention_dq_mma(cudaStream_t stream, void* dq, const void* dOut, const void* q, const void* k, const void* v,
                     const int32_t* keyMask, const float* lse, const float* delta, int B, int T, int H, int KVH, int D,
                     int window);

// The dk/dv pass on tensor cores: dk, dv [B,T,KVH,D] overwritten (every query head of a kv head's
// group summed in order), from the same operands as attention_dq_mma.
int attention_dkdv_mma(cudaStream_t stream, void* dk, void* dv, const void* dOut, const void* q, const void* k,
                       const void* v, const int32_t* keyMask, const float* lse, const float* delta, int B, int T, int H,
                       int KVH, int D, int window);

}  // namespace spin
