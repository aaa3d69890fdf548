// The CUDA emulator's stand-in for NCCL: the nccl* entry points that java/spin/nativebind/NcclAbi.java
// binds, with NCCL's C names and ABI (nccl_abi.h), exported from libspin_native_emu.so so that the
// Java code that drives the real libnccl (spin.dist.NcclCommunicator) runs unchanged in CI on the
// emulator's devices.
//
// Ranks are threads of this process: the ranks of one unique id meet here (a "clique"), each rank's
// n-th collective meeting every other rank's n-th. Emulated stream work runs when it is queued, so a
// collective returns only once every rank has called it; the last rank to arrive does the work for
// all of them (every device's memory is host memory). One thread may drive several ranks between
// ncclGroupStart and ncclGroupEnd, as with real NCCL and several GPUs: the calls are only recorded
// there, and ncclGroupEnd posts them all and then waits for them all, so that none waits for a rank
// this same thread has yet to post.
//
// Results, unlike NCCL's ring: a sum is accumulated in rank order from rank 0's value, in fp32 for
// ncclFloat32 and in double for ncclFloat64 (so every rank gets the same bits); gathers and
// broadcasts move fp32, fp64 and bf16 bit for bit. Only ncclSum is emulated, and bf16 only moves.
// Where NCCL would hang or corrupt memory, the stand-in says so: ranks whose calls disagree (kind,
// count, type, root) all get ncclInvalidUsage, and ncclGetLastError names each rank's call. A rank
// that aborts its communicator stops the clique: every waiting and later collective of the other
// ranks returns ncclRemoteError (a real group's peers would instead hang until their own watchdog
// aborts, which is what ncclCommGetAsyncError's ncclRemoteError then reports).
// The standard headers first: cuda_runtime.h defines CUDA's attribute macros (__noinline__ ...),
// which some of them use under their GCC spelling.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include <cuda_runtime.h>

#include "nccl_abi.h"
#include "spin_native.h"

using namespace spin_nccl;

struct spin_emu_nccl_comm;

namespace {

// NCCL 2.27.0 as ncclGetVersion encodes it: 10000 * major + 100 * minor + patch.
constexpr int EMULATED_VERSION = 22700;

enum class Kind { all_gather, reduce_scatter, all_reduce, broadcast };

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::all_gather: return "ncclAllGather";
        case Kind::reduce_scatter: return "ncclReduceScatter";
        case Kind::all_reduce: return "ncclAllReduce";
        case Kind::broadcast: return "ncclBroadcast";
    }
    return "?";
}

size_t type_bytes(ncclDataType_t type) { return type == ncclBfloat16 ? 2 : type == ncclFloat64 ? 8 : 4; }

const char* type_name(ncclDataType_t type) {
    return type == ncclBfloat16 ? "ncclBfloat16" : type == ncclFloat64 ? "ncclFloat64" : "ncclFloat32";
}

// One rank's call. `count` is NCCL's: the send count of an all-gather, the receive count of a
// reduce-scatter, the element count otherwise.
struct Op {
    Kind kind;
    const void* send;
    void* recv;
    size_t count;
    ncclDataType_t type;
    int root;

    std::string describe() const {
        char text[160];
        if (kind == Kind::broadcast) {
            std::snprintf(text, sizeof text, "%s(%zu x %s, root %d)", kind_name(kind), count, type_name(type), root);
        } else {
            std::snprintf(text, sizeof text, "%s(%zu x %s)", kind_name(kind), count, type_name(type));
        }
        return text;
    }
};

// The n-th collective of every rank.
struct Round {
    std::vector<Op> ops;
    std::vector<bool> posted;
    int arrived = 0;
    int collected = 0;
    bool done = false;
    ncclResult_t result = ncclSuccess;
    std::string error;
};

struct Clique {
    std::string id;
    int nranks;
    std::vector<spin_emu_nccl_comm*> members;
    int joined = 0;
    int live = 0;     // communicators not yet destroyed or aborted
    int waiters = 0;  // threads inside a wait on this clique, which keep it alive
    bool aborted = false;
    std::string abort_reason;
    std::map<long long, Round> rounds;
};

}  // namespace

struct spin_emu_nccl_comm {
    Clique* clique;
    int rank;
    int device;
    long long next_round = 0;
};

typedef spin_emu_nccl_comm* ncclComm_t;

namespace {

// One lock for all cliques: the emulator proves logic, and collectives here are host copies.
std::mutex mutex;
std::condition_variable changed;
std::map<std::string, Clique*> cliques;
std::unordered_set<ncclComm_t> live_comms;

// ncclGetLastError's text. Per thread here (each rank's thread reads its own failure), where NCCL
// keeps one per process.
thread_local std::string last_error;

ncclResult_t fail(ncclResult_t result, const char* format, ...) __attribute__((format(printf, 2, 3)));
ncclResult_t fail(ncclResult_t result, const char* format, ...) {
    char text[1024];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    last_error = text;
    return result;
}

// Calls recorded between ncclGroupStart and ncclGroupEnd on this thread.
struct Deferred {
    ncclComm_t comm;
    Op op;
};
thread_local int group_depth = 0;
thread_local std::vector<Deferred> group_ops;
thread_local std::vector<Clique*> group_inits;

void release_if_unused(Clique* clique) {  // under `mutex`
    if (clique->live == 0 && clique->waiters == 0) {
        cliques.erase(clique->id);
        delete clique;
    }
}

bool elementwise_disagree(const Round& round, std::string* each) {
    bool disagree = false;
    for (size_t r = 0; r < round.ops.size(); ++r) {
        const Op& a = round.ops[0];
        const Op& b = round.ops[r];
        if (a.kind != b.kind || a.count != b.count || a.type != b.type || a.root != b.root) disagree = true;
    }
    if (disagree) {
        for (size_t r = 0; r < round.ops.size(); ++r) {
            *each += (r == 0 ? "" : ", ") + std::string("rank ") + std::to_string(r) + ": " + round.ops[r].describe();
        }
    }
    return disagree;
}

template <class T>
void rank_order_sum(const Round& round, size_t offset, size_t n, T* out) {
    std::memcpy(out, static_cast<const char*>(round.ops[0].send) + offset * sizeof(T), n * sizeof(T));
    for (size_t r = 1; r < round.ops.size(); ++r) {
        const T* in = reinterpret_cast<const T*>(static_cast<const char*>(round.ops[r].send) + offset * sizeof(T));
        for (size_t i = 0; i < n; ++i) out[i] = out[i] + in[i];
    }
}

// Runs a round every rank has posted. Results are staged before any receive buffer is written,
// since the in-place forms make a rank's receive buffer another's input.
void execute(Round& round) {
    std::string each;
    if (elementwise_disagree(round, &each)) {
        round.result = ncclInvalidUsage;
        round.error = "ranks disagree on the collective (NCCL would hang or corrupt memory): " + each;
        return;
    }
    const Op& first = round.ops[0];
    const size_t nranks = round.ops.size();
    const size_t bytes = first.count * type_bytes(first.type);
    std::vector<char> staged;
    switch (first.kind) {
        case Kind::all_gather:
            staged.resize(bytes * nranks);
            for (size_t r = 0; r < nranks; ++r) std::memcpy(staged.data() + r * bytes, round.ops[r].send, bytes);
            for (const Op& op : round.ops) std::memcpy(op.recv, staged.data(), staged.size());
            return;
        case Kind::broadcast:
            staged.assign(static_cast<const char*>(round.ops[first.root].send),
                          static_cast<const char*>(round.ops[first.root].send) + bytes);
            for (const Op& op : round.ops) std::memcpy(op.recv, staged.data(), bytes);
            return;
        case Kind::all_reduce:
            staged.resize(bytes);
            if (first.type == ncclFloat64) {
                rank_order_sum(round, 0, first.count, reinterpret_cast<double*>(staged.data()));
            } else {
                rank_order_sum(round, 0, first.count, reinterpret_cast<float*>(staged.data()));
            }
            for (const Op& op : round.ops) std::memcpy(op.recv, staged.data(), bytes);
            return;
        case Kind::reduce_scatter:
            staged.resize(bytes * nranks);
            for (size_t r = 0; r < nranks; ++r) {
                if (first.type == ncclFloat64) {
                    rank_order_sum(round, r * first.count, first.count, reinterpret_cast<double*>(staged.data() + r * bytes));
                } else {
                    rank_order_sum(round, r * first.count, first.count, reinterpret_cast<float*>(staged.data() + r * bytes));
                }
            }
            for (size_t r = 0; r < nranks; ++r) std::memcpy(round.ops[r].recv, staged.data() + r * bytes, bytes);
            return;
    }
}

// Records this rank's part of its next round, and runs the round when it is the last part. Returns
// the round's number, for wait(). Under `mutex`.
long long post(ncclComm_t comm, const Op& op) {
    Clique* clique = comm->clique;
    const long long number = comm->next_round++;
    Round& round = clique->rounds[number];
    if (round.ops.empty()) {
        round.ops.resize(static_cast<size_t>(clique->nranks));
        round.posted.assign(static_cast<size_t>(clique->nranks), false);
    }
    round.ops[static_cast<size_t>(comm->rank)] = op;
    round.posted[static_cast<size_t>(comm->rank)] = true;
    if (++round.arrived == clique->nranks) {
        execute(round);
        round.done = true;
        changed.notify_all();
    }
    return number;
}

// Waits until round `number` of `clique` is done or the clique is aborted. Under `lock`.
ncclResult_t wait(std::unique_lock<std::mutex>& lock, Clique* clique, long long number, const char* call) {
    ++clique->waiters;
    changed.wait(lock, [&] { return clique->aborted || clique->rounds[number].done; });
    --clique->waiters;
    ncclResult_t result;
    auto found = clique->rounds.find(number);
    if (found->second.done) {
        result = found->second.result;
        if (result != ncclSuccess) fail(result, "%s: %s", call, found->second.error.c_str());
        if (++found->second.collected == clique->nranks) clique->rounds.erase(found);
    } else {
        result = fail(ncclRemoteError, "%s: the communicator was aborted: %s", call, clique->abort_reason.c_str());
    }
    release_if_unused(clique);
    return result;
}

ncclResult_t check_comm(ncclComm_t comm, const char* call) {  // under `mutex`
    if (comm == nullptr || live_comms.count(comm) == 0) {
        return fail(ncclInvalidArgument, "%s: %p is not a live communicator (destroyed or aborted?)", call,
                    static_cast<void*>(comm));
    }
    return ncclSuccess;
}

ncclResult_t collective(const Op& op, ncclComm_t comm, cudaStream_t stream) {
    const char* call = kind_name(op.kind);
    int device = -1;
    if (spin_emu::stream_device(stream, &device) != cudaSuccess) {
        cudaGetLastError();
        return fail(ncclInvalidArgument, "%s: %p is not a live stream", call, static_cast<void*>(stream));
    }
    std::unique_lock<std::mutex> lock(mutex);
    if (ncclResult_t bad = check_comm(comm, call)) return bad;
    Clique* clique = comm->clique;
    if (device != comm->device) {
        return fail(ncclInvalidArgument, "%s: the stream belongs to device %d, rank %d's communicator to device %d", call,
                    device, comm->rank, comm->device);
    }
    if (op.type != ncclFloat32 && op.type != ncclFloat64 && op.type != ncclBfloat16) {
        return fail(ncclInvalidArgument, "%s: data type %d is not emulated (ncclFloat32, ncclFloat64, ncclBfloat16)", call,
                    static_cast<int>(op.type));
    }
    if ((op.kind == Kind::all_reduce || op.kind == Kind::reduce_scatter) && op.type == ncclBfloat16) {
        return fail(ncclInvalidArgument, "%s: bf16 sums are not emulated (only ncclFloat32 and ncclFloat64)", call);
    }
    if (op.kind == Kind::broadcast && (op.root < 0 || op.root >= clique->nranks)) {
        return fail(ncclInvalidArgument, "%s: root %d is not a rank of %d", call, op.root, clique->nranks);
    }
    if (op.count > 0 && ((op.send == nullptr && (op.kind != Kind::broadcast || op.root == comm->rank)) || op.recv == nullptr)) {
        return fail(ncclInvalidArgument, "%s: NULL buffer", call);
    }
    if (clique->aborted) {
        return fail(ncclRemoteError, "%s: the communicator was aborted: %s", call, clique->abort_reason.c_str());
    }
    if (clique->joined < clique->nranks) {
        return fail(ncclInvalidUsage, "%s: only %d of %d ranks have joined the communicator", call, clique->joined,
                    clique->nranks);
    }
    if (group_depth > 0) {
        group_ops.push_back({comm, op});
        return ncclSuccess;
    }
    const long long number = post(comm, op);
    return wait(lock, clique, number, call);
}

// Waits until every rank of `clique` has joined or it is aborted. Under `lock`.
ncclResult_t wait_joined(std::unique_lock<std::mutex>& lock, Clique* clique) {
    ++clique->waiters;
    changed.wait(lock, [&] { return clique->aborted || clique->joined == clique->nranks; });
    --clique->waiters;
    const bool aborted = clique->joined < clique->nranks;
    std::string reason = clique->abort_reason;
    release_if_unused(clique);
    return aborted ? fail(ncclRemoteError, "ncclCommInitRank: aborted before every rank joined: %s", reason.c_str())
                   : ncclSuccess;
}

const char* error_string(ncclResult_t result) {
    switch (result) {
        case ncclSuccess: return "no error";
        case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
        case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
        case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
        case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
        case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
        case ncclRemoteError: return "remote process exited or there was a network error";
        case ncclInProgress: return "NCCL operation in progress";
    }
    return "unknown result code";
}

}  // namespace

extern "C" {

SPIN_EXPORT ncclResult_t ncclGetVersion(int* version) {
    if (version == nullptr) return fail(ncclInvalidArgument, "ncclGetVersion: NULL");
    *version = EMULATED_VERSION;
    return ncclSuccess;
}

SPIN_EXPORT const char* ncclGetErrorString(ncclResult_t result) { return error_string(result); }

SPIN_EXPORT const char* ncclGetLastError(ncclComm_t) { return last_error.c_str(); }

// An id no other call of this process (or, with the pid and a random part, of another) returns.
SPIN_EXPORT ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (id == nullptr) return fail(ncclInvalidArgument, "ncclGetUniqueId: NULL");
    static std::atomic<unsigned long long> counter{0};
    std::random_device entropy;
    std::memset(id->internal, 0, sizeof id->internal);
    std::snprintf(id->internal, sizeof id->internal, "spin-emu-nccl pid %ld id %llu random %08x%08x",
                  static_cast<long>(getpid()), counter.fetch_add(1), entropy(), entropy());
    return ncclSuccess;
}

SPIN_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    if (comm == nullptr) return fail(ncclInvalidArgument, "ncclCommInitRank: NULL");
    *comm = nullptr;
    if (nranks < 1) return fail(ncclInvalidArgument, "ncclCommInitRank: nranks %d < 1", nranks);
    if (rank < 0 || rank >= nranks) return fail(ncclInvalidArgument, "ncclCommInitRank: rank %d is not in [0, %d)", rank, nranks);
    int device = 0;
    cudaGetDevice(&device);  // NCCL binds a communicator to the device current at its creation
    const std::string key(id.internal, sizeof id.internal);
    std::unique_lock<std::mutex> lock(mutex);
    Clique*& clique = cliques[key];
    if (clique == nullptr) {
        clique = new Clique();
        clique->id = key;
        clique->nranks = nranks;
        clique->members.assign(static_cast<size_t>(nranks), nullptr);
    }
    Clique* joined = clique;
    if (joined->nranks != nranks) {
        return fail(ncclInvalidArgument, "ncclCommInitRank: rank %d says %d ranks, an earlier rank of this id said %d", rank,
                    nranks, joined->nranks);
    }
    if (joined->members[static_cast<size_t>(rank)] != nullptr || joined->joined == nranks) {
        return fail(ncclInvalidUsage, "ncclCommInitRank: rank %d of this id has joined already", rank);
    }
    if (joined->aborted) {
        return fail(ncclRemoteError, "ncclCommInitRank: the communicator was aborted: %s", joined->abort_reason.c_str());
    }
    ncclComm_t made = new spin_emu_nccl_comm{joined, rank, device};
    joined->members[static_cast<size_t>(rank)] = made;
    ++joined->joined;
    ++joined->live;
    live_comms.insert(made);
    changed.notify_all();
    *comm = made;
    if (group_depth > 0) {
        group_inits.push_back(joined);
        ++joined->waiters;  // kept alive until ncclGroupEnd has waited for it
        return ncclSuccess;
    }
    return wait_joined(lock, joined);
}

SPIN_EXPORT ncclResult_t ncclGroupStart() {
    ++group_depth;
    return ncclSuccess;
}

SPIN_EXPORT ncclResult_t ncclGroupEnd() {
    if (group_depth == 0) return fail(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
    if (--group_depth > 0) return ncclSuccess;
    std::vector<Clique*> inits;
    std::vector<Deferred> ops;
    inits.swap(group_inits);
    ops.swap(group_ops);
    std::unique_lock<std::mutex> lock(mutex);
    ncclResult_t first = ncclSuccess;
    for (Clique* clique : inits) {
        --clique->waiters;  // wait_joined counts its own
        const ncclResult_t result = wait_joined(lock, clique);
        if (first == ncclSuccess) first = result;
    }
    // Post everything first: a later call may be another rank of the same round.
    std::vector<std::pair<Clique*, long long>> posted;
    for (const Deferred& d : ops) {
        if (live_comms.count(d.comm) == 0 || d.comm->clique->aborted) {
            if (first == ncclSuccess) first = fail(ncclRemoteError, "ncclGroupEnd: a communicator was aborted or destroyed");
            continue;
        }
        posted.emplace_back(d.comm->clique, post(d.comm, d.op));
        ++d.comm->clique->waiters;
    }
    for (const auto& [clique, number] : posted) {
        --clique->waiters;
        const ncclResult_t result = wait(lock, clique, number, "ncclGroupEnd");
        if (first == ncclSuccess) first = result;
    }
    return first;
}

SPIN_EXPORT ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                                       ncclComm_t comm, cudaStream_t stream) {
    return collective(Op{Kind::all_gather, sendbuff, recvbuff, sendcount, datatype, -1}, comm, stream);
}

SPIN_EXPORT ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    if (op != ncclSum) return fail(ncclInvalidArgument, "ncclReduceScatter: only ncclSum is emulated, not %d", static_cast<int>(op));
    return collective(Op{Kind::reduce_scatter, sendbuff, recvbuff, recvcount, datatype, -1}, comm, stream);
}

SPIN_EXPORT ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                       ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    if (op != ncclSum) return fail(ncclInvalidArgument, "ncclAllReduce: only ncclSum is emulated, not %d", static_cast<int>(op));
    return collective(Op{Kind::all_reduce, sendbuff, recvbuff, count, datatype, -1}, comm, stream);
}

SPIN_EXPORT ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                       int root, ncclComm_t comm, cudaStream_t stream) {
    return collective(Op{Kind::broadcast, sendbuff, recvbuff, count, datatype, root}, comm, stream);
}

SPIN_EXPORT ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
    std::lock_guard<std::mutex> lock(mutex);
    if (ncclResult_t bad = check_comm(comm, "ncclCommCount")) return bad;
    if (count == nullptr) return fail(ncclInvalidArgument, "ncclCommCount: NULL");
    *count = comm->clique->nranks;
    return ncclSuccess;
}

SPIN_EXPORT ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
    std::lock_guard<std::mutex> lock(mutex);
    if (ncclResult_t bad = check_comm(comm, "ncclCommUserRank")) return bad;
    if (rank == nullptr) return fail(ncclInvalidArgument, "ncclCommUserRank: NULL");
    *rank = comm->rank;
    return ncclSuccess;
}

SPIN_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
    std::lock_guard<std::mutex> lock(mutex);
    if (ncclResult_t bad = check_comm(comm, "ncclCommGetAsyncError")) return bad;
    if (async_error == nullptr) return fail(ncclInvalidArgument, "ncclCommGetAsyncError: NULL");
    *async_error = comm->clique->aborted ? ncclRemoteError : ncclSuccess;
    return ncclSuccess;
}

// Frees this rank's communicator; the clique's other ranks are not told, as with NCCL (its peers
// must destroy theirs too, after their last collective).
SPIN_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    std::lock_guard<std::mutex> lock(mutex);
    if (ncclResult_t bad = check_comm(comm, "ncclCommDestroy")) return bad;
    Clique* clique = comm->clique;
    clique->members[static_cast<size_t>(comm->rank)] = nullptr;
    --clique->live;
    live_comms.erase(comm);
    delete comm;
    release_if_unused(clique);
    return ncclSuccess;
}

// Frees this rank's communicator and stops the clique: the other ranks' waiting and later
// collectives return ncclRemoteError. Safe while another thread waits in this communicator's
// collective (it wakes with that error), as NCCL allows an abort from a watchdog thread.
SPIN_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
    std::lock_guard<std::mutex> lock(mutex);
    if (ncclResult_t bad = check_comm(comm, "ncclCommAbort")) return bad;
    Clique* clique = comm->clique;
    if (!clique->aborted) {
        clique->aborted = true;
        clique->abort_reason = "rank " + std::to_string(comm->rank) + " called ncclCommAbort";
    }
    clique->members[static_cast<size_t>(comm->rank)] = nullptr;
    --clique->live;
    live_comms.erase(comm);
    delete comm;
    changed.notify_all();
    release_if_unused(clique);
    return ncclSuccess;
}

}  // extern "C"
