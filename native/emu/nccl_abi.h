// The part of NCCL's C ABI that spin uses (nccl.h of NCCL 2.x): enum values and the unique id's
// size. The emulator's stand-in (nccl_emu.cpp) is written against these;
// java/spin/nativebind/NcclAbi.java holds the same values.
//
// Everything is in namespace spin_nccl under NCCL's own names, so that one program can include
// this header beside NCCL's and evaluate the same expression in both scopes:
// tests/java/spin/nativebind/VendorHeadersTest.java does, and fails on any difference.
#pragma once

#include <cstddef>

namespace spin_nccl {

#define SPIN_NCCL_UNIQUE_ID_BYTES 128
// nccl.h's macro, under its own name inside the namespace's scope for the header comparison.
constexpr int NCCL_UNIQUE_ID_BYTES = SPIN_NCCL_UNIQUE_ID_BYTES;

// C enums: int-sized, passed and returned as int.
enum ncclResult_t : int {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
};

enum ncclDataType_t : int {
    ncclFloat32 = 7,
    ncclFloat64 = 8,
    ncclBfloat16 = 9,
};

enum ncclRedOp_t : int {
    ncclSum = 0,
};

// Passed by value to ncclCommInitRank: 128 opaque bytes.
struct ncclUniqueId {
    char internal[SPIN_NCCL_UNIQUE_ID_BYTES];
};

}  // namespace spin_nccl
