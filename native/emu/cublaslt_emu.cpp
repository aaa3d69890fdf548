// The CUDA emulator's stand-in for cuBLASLt: the cublasLt* entry points that
// java/spin/nativebind/CublasLtAbi.java binds, with cuBLASLt's C ABI (cublaslt_abi.h), exported
// from libspin_native_emu.so so that the Java code that drives the real libcublasLt runs unchanged
// in CI, without a GPU.
//
// Only what spin uses exists: D = alpha * op(A) op(B) + beta * C under CUBLAS_COMPUTE_32F with fp32
// alpha and beta in host memory, op N or T, column-major layouts with leading dimensions, and the
// type combinations cuBLASLt's table lists for that compute type among fp32 and bf16: A and B alike,
// C and D alike, fp32 x fp32 -> fp32, bf16 x bf16 -> bf16 and bf16 x bf16 -> fp32. Anything else
// (fp32 x fp32 -> bf16, mixed A and B, C unlike D) is CUBLAS_STATUS_NOT_SUPPORTED, as cuBLASLt's
// heuristic finds no algorithm for it; a malformed call (dead handle, shapes that do not fit,
// misaligned pointer) is CUBLAS_STATUS_INVALID_VALUE.
//
// Each element is accumulated in fp32 by fused multiply-adds over k in increasing order, so the
// result is reproducible to the bit; a bf16 C is widened when read, and a bf16 D is the fp32 result
// rounded once to nearest even. As with all emulated stream work, the product is computed when it
// is queued.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

#include "bf16.cuh"
#include "cublaslt_abi.h"
#include "spin_native.h"

using namespace spin_cublaslt;

struct spin_emu_cublaslt_context {};

struct spin_emu_matmul_desc {
    cublasComputeType_t compute;
    cudaDataType scale;
    cublasOperation_t trans_a;
    cublasOperation_t trans_b;
};

struct spin_emu_matrix_layout {
    cudaDataType type;
    uint64_t rows;
    uint64_t cols;
    int64_t ld;
};

// Index i of min_alignment is matrix A, B, C, D.
struct spin_emu_matmul_preference {
    uint64_t max_workspace_bytes;
    uint32_t min_alignment[4];
};

typedef spin_emu_cublaslt_context* cublasLtHandle_t;
typedef spin_emu_matmul_desc* cublasLtMatmulDesc_t;
typedef spin_emu_matrix_layout* cublasLtMatrixLayout_t;
typedef spin_emu_matmul_preference* cublasLtMatmulPreference_t;

namespace {

// cublasLtGetVersion's answer: the cuBLASLt whose API this follows, as 10000 * major + 100 * minor.
constexpr size_t EMULATED_VERSION = 130000;
// algo.data[0] of every algorithm the heuristic hands out ("SPINEMU1"); data[1..4] are the byte
// alignments of A, B, C, D that the algorithm was chosen for.
constexpr uint64_t ALGO_TAG = 0x5350494e454d5531ull;
// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES default: cudaMalloc's alignment.
constexpr uint32_t DEFAULT_ALIGNMENT = 256;

// The live objects of one kind, so that a destroyed or foreign pointer is refused, never read.
template <typename T>
class Live {
public:
    cublasStatus_t create(T** out, const T& initial) {
        if (out == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
        T* object = new (std::nothrow) T(initial);
        if (object == nullptr) return CUBLAS_STATUS_ALLOC_FAILED;
        std::lock_guard<std::mutex> lock(mutex_);
        objects_.insert(object);
        *out = object;
        return CUBLAS_STATUS_SUCCESS;
    }

    bool contains(const T* object) {
        std::lock_guard<std::mutex> lock(mutex_);
        return objects_.count(const_cast<T*>(object)) != 0;
    }

    bool destroy(T* object) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (objects_.erase(object) == 0) return false;
        delete object;
        return true;
    }

private:
    std::mutex mutex_;
    std::unordered_set<T*> objects_;
};

Live<spin_emu_cublaslt_context> contexts;
Live<spin_emu_matmul_desc> descs;
Live<spin_emu_matrix_layout> layouts;
Live<spin_emu_matmul_preference> preferences;

size_t element_bytes(cudaDataType type) { return type == CUDA_R_32F ? 4 : 2; }

bool supported_type(int type) { return type == CUDA_R_32F || type == CUDA_R_16BF; }

bool supported_operation(int operation) { return operation == CUBLAS_OP_N || operation == CUBLAS_OP_T; }

// Attribute values travel as (buffer, size); the size must be the attribute's own.
template <typename V>
bool read_attribute(const void* buffer, size_t size, V* value) {
    if (buffer == nullptr || size != sizeof(V)) return false;
    std::memcpy(value, buffer, sizeof(V));
    return true;
}

// A matmul as its four layouts describe it: op(A) is m x k, op(B) k x n, C and D m x n; A and B
// hold inputs, C and D output.
struct Problem {
    size_t m, n, k;
    cudaDataType inputs, output;

    // The element type of matrix A, B, C, D (index 0..3), as cublasLtMatmulPreference numbers them.
    cudaDataType type(int matrix) const { return matrix < 2 ? inputs : output; }
};

// The CUBLAS_COMPUTE_32F rows of cuBLASLt's cublasLtMatmul type table that involve only fp32 and bf16.
bool supported_types(int a, int b, int c, int d) {
    if (!supported_type(a) || b != a || d != c) return false;
    return c == a || (a == CUDA_R_16BF && c == CUDA_R_32F);
}

cublasStatus_t describe(const spin_emu_matmul_desc* desc, const spin_emu_matrix_layout* a,
                        const spin_emu_matrix_layout* b, const spin_emu_matrix_layout* c,
                        const spin_emu_matrix_layout* d, Problem* problem) {
    if (!descs.contains(desc)) return CUBLAS_STATUS_INVALID_VALUE;
    for (const spin_emu_matrix_layout* layout : {a, b, c, d}) {
        if (!layouts.contains(layout)) return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!supported_types(a->type, b->type, c->type, d->type)) return CUBLAS_STATUS_NOT_SUPPORTED;
    const bool a_n = desc->trans_a == CUBLAS_OP_N;
    const bool b_n = desc->trans_b == CUBLAS_OP_N;
    const uint64_t m = a_n ? a->rows : a->cols;
    const uint64_t k = a_n ? a->cols : a->rows;
    const uint64_t b_k = b_n ? b->rows : b->cols;
    const uint64_t n = b_n ? b->cols : b->rows;
    if (b_k != k || c->rows != m || c->cols != n || d->rows != m || d->cols != n) return CUBLAS_STATUS_INVALID_VALUE;
    for (const spin_emu_matrix_layout* layout : {a, b, c, d}) {
        if (layout->ld < 1 || static_cast<uint64_t>(layout->ld) < layout->rows) return CUBLAS_STATUS_INVALID_VALUE;
    }
    *problem = Problem{m, n, k, a->type, c->type};
    return CUBLAS_STATUS_SUCCESS;
}

float load(const void* base, cudaDataType type, size_t index) {
    if (type == CUDA_R_32F) {
        float value;
        std::memcpy(&value, static_cast<const char*>(base) + index * 4, 4);
        return value;
    }
    uint16_t bits;
    std::memcpy(&bits, static_cast<const char*>(base) + index * 2, 2);
    return bf16_bits_to_f32(bits);
}

// bf16 rounding as every kernel rounds (kernels/bf16.cuh: nearest even, NaN stays a quiet NaN).
void store(void* base, cudaDataType type, size_t index, float value) {
    if (type == CUDA_R_32F) {
        std::memcpy(static_cast<char*>(base) + index * 4, &value, 4);
        return;
    }
    const uint16_t rounded = f32_to_bf16_bits(value);
    std::memcpy(static_cast<char*>(base) + index * 2, &rounded, 2);
}

// op(X) copied to fp32, `outer` runs of `inner` contiguous values: run o holds row o of op(X) when
// outer_is_row, else column o. Both operands packed this way make the k loop contiguous, and
// packing before any store keeps the result right even if D overlaps A or B.
std::vector<float> pack(const void* base, const spin_emu_matrix_layout& layout, bool transposed, size_t outer,
                        size_t inner, bool outer_is_row) {
    std::vector<float> packed(outer * inner);
    const size_t ld = static_cast<size_t>(layout.ld);
    // Stored element (r, c) of the column-major X is at r + c * ld; op(X) = X^T swaps r and c.
    const bool outer_is_stored_row = outer_is_row != transposed;
    for (size_t o = 0; o < outer; ++o) {
        for (size_t i = 0; i < inner; ++i) {
            const size_t index = outer_is_stored_row ? o + i * ld : i + o * ld;
            packed[o * inner + i] = load(base, layout.type, index);
        }
    }
    return packed;
}

bool aligned(const void* pointer, size_t alignment) {
    return reinterpret_cast<uintptr_t>(pointer) % alignment == 0;
}

}  // namespace

extern "C" {

SPIN_EXPORT cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    return contexts.create(handle, spin_emu_cublaslt_context{});
}

SPIN_EXPORT cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    return contexts.destroy(handle) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

SPIN_EXPORT size_t cublasLtGetVersion(void) { return EMULATED_VERSION; }

SPIN_EXPORT cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                                    cudaDataType scale) {
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    return descs.create(desc, spin_emu_matmul_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N});
}

SPIN_EXPORT cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    return descs.destroy(desc) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

SPIN_EXPORT cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                                          cublasLtMatmulDescAttributes_t attribute,
                                                          const void* buffer, size_t size) {
    if (!descs.contains(desc)) return CUBLAS_STATUS_INVALID_VALUE;
    int32_t value;
    if (!read_attribute(buffer, size, &value)) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attribute) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
            if (value != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
            if (value != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_TRANSA:
        case CUBLASLT_MATMUL_DESC_TRANSB:
            if (!supported_operation(value)) return CUBLAS_STATUS_NOT_SUPPORTED;
            (attribute == CUBLASLT_MATMUL_DESC_TRANSA ? desc->trans_a : desc->trans_b) =
                static_cast<cublasOperation_t>(value);
            return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

// The type is checked where cuBLASLt checks it, when a matmul is planned or run.
SPIN_EXPORT cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                                      uint64_t rows, uint64_t cols, int64_t ld) {
    return layouts.create(layout, spin_emu_matrix_layout{type, rows, cols, ld});
}

SPIN_EXPORT cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    return layouts.destroy(layout) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

SPIN_EXPORT cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* preference) {
    const spin_emu_matmul_preference defaults{
        0, {DEFAULT_ALIGNMENT, DEFAULT_ALIGNMENT, DEFAULT_ALIGNMENT, DEFAULT_ALIGNMENT}};
    return preferences.create(preference, defaults);
}

SPIN_EXPORT cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t preference) {
    return preferences.destroy(preference) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

SPIN_EXPORT cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t preference,
                                                                cublasLtMatmulPreferenceAttributes_t attribute,
                                                                const void* buffer, size_t size) {
    if (!preferences.contains(preference)) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attribute) {
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
            return read_attribute(buffer, size, &preference->max_workspace_bytes) ? CUBLAS_STATUS_SUCCESS
                                                                                  : CUBLAS_STATUS_INVALID_VALUE;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
            uint32_t alignment;
            if (!read_attribute(buffer, size, &alignment) || alignment == 0) return CUBLAS_STATUS_INVALID_VALUE;
            preference->min_alignment[attribute - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = alignment;
            return CUBLAS_STATUS_SUCCESS;
        }
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

// One algorithm for every problem; it needs no workspace. Alignments below an element's size
// leave no algorithm, as they would leave no correct one on a GPU.
SPIN_EXPORT cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                          cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                          cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                          cublasLtMatmulPreference_t preference, int requested,
                                                          cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!contexts.contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested <= 0 || results == nullptr || returned == nullptr || !preferences.contains(preference)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *returned = 0;
    Problem problem;
    if (cublasStatus_t status = describe(desc, a, b, c, d, &problem)) return status;
    for (int matrix = 0; matrix < 4; ++matrix) {
        if (preference->min_alignment[matrix] < element_bytes(problem.type(matrix))) {
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    }
    std::memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = ALGO_TAG;
    for (int matrix = 0; matrix < 4; ++matrix) results[0].algo.data[1 + matrix] = preference->min_alignment[matrix];
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

SPIN_EXPORT cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                                          const void* A, cublasLtMatrixLayout_t a, const void* B,
                                          cublasLtMatrixLayout_t b, const void* beta, const void* C,
                                          cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                                          const cublasLtMatmulAlgo_t* algo, void* /*workspace*/,
                                          size_t /*workspace_bytes*/, cudaStream_t stream) {
    if (!contexts.contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    Problem problem;
    if (cublasStatus_t status = describe(desc, a, b, c, d, &problem)) return status;
    if (alpha == nullptr || beta == nullptr || (algo != nullptr && algo->data[0] != ALGO_TAG)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    float alpha_value;
    float beta_value;
    std::memcpy(&alpha_value, alpha, 4);
    std::memcpy(&beta_value, beta, 4);
    // beta == 0 means C is not read, so it may hold anything (NaN included) or be NULL.
    const bool reads_c = beta_value != 0.0f;
    const void* const pointers[4] = {A, B, reads_c ? C : nullptr, D};
    for (int matrix = 0; matrix < 4; ++matrix) {
        const size_t bytes = element_bytes(problem.type(matrix));
        const size_t alignment = algo != nullptr ? algo->data[1 + matrix] : bytes;
        if (alignment == 0 || !aligned(pointers[matrix], alignment) || !aligned(pointers[matrix], bytes)) {
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    }
    const bool empty = problem.m == 0 || problem.n == 0;
    if (!empty && (D == nullptr || (reads_c && C == nullptr) || (problem.k > 0 && (A == nullptr || B == nullptr)))) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    // In place (C == D) cuBLASLt needs one layout for both.
    if (reads_c && C == D && c->ld != d->ld) return CUBLAS_STATUS_INVALID_VALUE;
    // A launch on a dead stream fails in CUDA, which cuBLAS reports as an execution failure.
    // The failed query also sets this thread's last CUDA error, which cuBLAS's own failure must not
    // leave behind for the next kernel launch's check to report.
    if (cudaStreamQuery(stream) != cudaSuccess) {
        cudaGetLastError();
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (empty) return CUBLAS_STATUS_SUCCESS;

    const size_t m = problem.m;
    const size_t n = problem.n;
    const size_t k = problem.k;
    std::vector<float> rows_of_a;
    std::vector<float> columns_of_b;
    try {
        rows_of_a = pack(A, *a, desc->trans_a == CUBLAS_OP_T, m, k, true);
        columns_of_b = pack(B, *b, desc->trans_b == CUBLAS_OP_T, n, k, false);
    } catch (const std::bad_alloc&) {
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    const size_t ldc = static_cast<size_t>(c->ld);
    const size_t ldd = static_cast<size_t>(d->ld);
    for (size_t j = 0; j < n; ++j) {
        const float* column = columns_of_b.data() + j * k;
        for (size_t i = 0; i < m; ++i) {
            const float* row = rows_of_a.data() + i * k;
            float sum = 0.0f;
            for (size_t p = 0; p < k; ++p) sum = std::fma(row[p], column[p], sum);
            float value = alpha_value * sum;
            if (reads_c) value = std::fma(beta_value, load(C, problem.output, i + j * ldc), value);
            store(D, problem.output, i + j * ldd, value);
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
