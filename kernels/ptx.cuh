// The inline-PTX instructions our kernels may use, each behind one small function with two bodies:
// the PTX itself for nvcc (sm_80 and later), and an emulated body for the CUDA emulator
// (native/emu), which follows the PTX ISA's fragment layouts. A kernel that needs another PTX
// instruction adds it here, with both bodies and a test in tests/cuda/kernel_tests.cu.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

// Full unrolling of a loop over register fragments, so that nvcc keeps the arrays it indexes in
// registers (a loop it leaves rolled indexes them from local memory). The emulator's host compiler
// needs no hint.
#ifdef SPIN_CUDA_EMULATOR
#define SPIN_UNROLL
#else
#define SPIN_UNROLL _Pragma("unroll")
#endif

#ifndef SPIN_CUDA_EMULATOR
// Shared-state-space address of a generic pointer into shared memory, as PTX's [addr] operands want.
__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}
#endif

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 ---------------------------------------
// d = a * b + c for a warp: A 16x16 bf16 (row-major fragments), B 16x8 bf16 ("col"), C and D
// 16x8 fp32. Each lane holds its fragments as the PTX ISA lays them out ("Matrix Fragments for
// mma.m16n8k16 with floating point type"); all 32 lanes must call it together.
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                  const float (&c)[4]) {
#ifdef SPIN_CUDA_EMULATOR
    uint32_t in[10] = {a[0], a[1], a[2], a[3], b[0], b[1],
                       __float_as_uint(c[0]), __float_as_uint(c[1]), __float_as_uint(c[2]), __float_as_uint(c[3])};
    uint32_t out[4];
    spin_emu::warp_collective(spin_emu::WarpOp::mma_m16n8k16_bf16, 0xffffffffu, 0, in, 10, out, 4);
    for (int i = 0; i < 4; ++i) d[i] = __uint_as_float(out[i]);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#endif
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 ---------------------------------------
// Loads COUNT 8x8 b16 matrices from shared memory for a warp: lane 8*j + r passes the address of
// row r of matrix j (16 bytes, 16-byte aligned); register j of lane l receives row l/4, columns
// 2*(l%4) and 2*(l%4)+1 of matrix j (with TRANS: of matrix j transposed). All 32 lanes call it
// together, with lanes past 8*COUNT passing any valid address.
template <int COUNT, bool TRANS = false>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[COUNT], const void* row) {
    static_assert(COUNT == 1 || COUNT == 2 || COUNT == 4, "ldmatrix loads 1, 2 or 4 matrices");
#ifdef SPIN_CUDA_EMULATOR
    const uint64_t address = reinterpret_cast<uintptr_t>(row);
    const uint32_t in[2] = {static_cast<uint32_t>(address), static_cast<uint32_t>(address >> 32)};
    spin_emu::warp_collective(spin_emu::WarpOp::ldmatrix, 0xffffffffu, COUNT | (TRANS ? 1 << 8 : 0), in, 2, r, COUNT);
#else
    const uint32_t address = shared_address(row);
    if constexpr (COUNT == 1 && !TRANS) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address));
    } else if constexpr (COUNT == 1) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address));
    } else if constexpr (COUNT == 2 && !TRANS) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1]) : "r"(address));
    } else if constexpr (COUNT == 2) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1]) : "r"(address));
    } else if constexpr (!TRANS) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
    }
#endif
}

// ---- cp.async (global -> shared, asynchronous) ------------------------------------------------------
// Copies BYTES (4, 8 or 16; both addresses aligned to it) from global to shared memory without
// waiting. The data may land any time before the cp_async_wait that covers its group; reading the
// destination earlier is a race (the emulator hands out poison there until the wait).
template <int BYTES>
__device__ __forceinline__ void cp_async(void* shared_dst, const void* global_src) {
    static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
#ifdef SPIN_CUDA_EMULATOR
    spin_emu::cp_async(shared_dst, global_src, BYTES, BYTES);
#else
    if constexpr (BYTES == 16) {
        // .cg: bypass L1, the usual choice for tiles that are read once per block.
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(shared_dst)), "l"(global_src)
                     : "memory");
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(shared_address(shared_dst)),
                     "l"(global_src), "n"(BYTES)
                     : "memory");
    }
#endif
}

// 16 bytes of which only the first src_bytes (0..16) are read; the rest of the destination is
// zeroed. Tiles use it at the edge of a matrix: src_bytes = 0 reads nothing.
__device__ __forceinline__ void cp_async_16_zfill(void* shared_dst, const void* global_src, int src_bytes) {
#ifdef SPIN_CUDA_EMULATOR
    spin_emu::cp_async(shared_dst, global_src, 16, src_bytes);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared_dst)),
                 "l"(global_src), "r"(src_bytes)
                 : "memory");
#endif
}

// Closes the group of this thread's cp.async copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#ifdef SPIN_CUDA_EMULATOR
    spin_emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most PENDING of this thread's committed groups are still in flight. Other threads'
// copies need a __syncthreads after their own waits before this thread may read them.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#ifdef SPIN_CUDA_EMULATOR
    spin_emu::cp_async_wait(PENDING);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

// Commits and waits for every copy of this thread (cp.async.wait_all).
__device__ __forceinline__ void cp_async_wait_all() {
#ifdef SPIN_CUDA_EMULATOR
    spin_emu::cp_async_commit();
    spin_emu::cp_async_wait(0);
#else
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}
