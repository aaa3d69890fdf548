// The part of cuBLASLt's C ABI that spin uses (cublasLt.h, cublas_api.h, library_types.h of
// CUDA 13): enum values, struct layouts. The emulator's stand-in (cublaslt_emu.cpp) is written
// against these; java/spin/nativebind/CublasLtAbi.java holds the same values.
//
// Everything is in namespace spin_cublaslt under NVIDIA's own names, so that one program can
// include this header beside NVIDIA's and evaluate the same expression in both scopes:
// tests/java/spin/nativebind/VendorHeadersTest.java does, and fails on any difference.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spin_cublaslt {

// C enums: int-sized, passed and returned as int.
enum cublasStatus_t : int {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16,
};

enum cublasOperation_t : int {
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
};

enum cudaDataType : int {
    CUDA_R_32F = 0,
    CUDA_R_16BF = 14,
};

enum cublasComputeType_t : int {
    CUBLAS_COMPUTE_32F = 68,
};

// Each attribute's value is an int32_t.
enum cublasLtMatmulDescAttributes_t : int {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
};

// MAX_WORKSPACE_BYTES is a uint64_t, the alignments are uint32_t (default 256).
enum cublasLtMatmulPreferenceAttributes_t : int {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

// Semi-opaque: the library fills it in, callers copy it around.
struct cublasLtMatmulAlgo_t {
    uint64_t data[8];
};

struct cublasLtMatmulHeuristicResult_t {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
};

}  // namespace spin_cublaslt
