// The CUDA emulator's runtime: host API (memory, streams, events, errors) and the launch, which
// runs CUDA threads as fibers. See native/emu/cuda_runtime.h for the model and
// docs/ARCHITECTURE.md ("CUDA emulator") for what is and is not emulated.
#include <cuda_runtime.h>

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SPIN_EMU_ASAN 1
#endif

// ---- fiber contexts --------------------------------------------------------------------------------
// glibc's swapcontext makes two system calls per switch (it saves and restores the signal mask),
// and a block switches fibers at every barrier and warp collective: most of an emulated launch's
// time. On x86-64 without AddressSanitizer the switch is instead the few instructions below, which
// save what the System V ABI says a call preserves (rbx, rbp, r12-r15, the SSE and x87 control
// words) on the old stack and restore them from the new one. Under ASan (the native harness) and
// elsewhere ucontext stays, since ASan tracks fiber switches through swapcontext.
#if defined(__x86_64__) && !defined(SPIN_EMU_ASAN)
#define SPIN_EMU_FAST_SWITCH 1
extern "C" void spin_emu_switch(void** save_sp, void* load_sp) __attribute__((visibility("hidden")));
extern "C" void spin_emu_fiber_start() __attribute__((visibility("hidden")));
extern "C" void spin_emu_fiber_main() __attribute__((visibility("hidden"), noreturn));
asm(R"(
    .text
    .globl spin_emu_switch
    .hidden spin_emu_switch
    .type spin_emu_switch, @function
spin_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size spin_emu_switch, .-spin_emu_switch

    .globl spin_emu_fiber_start
    .hidden spin_emu_fiber_start
    .type spin_emu_fiber_start, @function
spin_emu_fiber_start:
    call spin_emu_fiber_main
    ud2
    .size spin_emu_fiber_start, .-spin_emu_fiber_start
)");
#endif

// Bounds of the spin_emu_shared section (every static __shared__ variable of this module), made by
// the linker. Weak: a module without any __shared__ variable has no such section.
extern "C" char __start_spin_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_spin_emu_shared[] __attribute__((weak, visibility("hidden")));

namespace spin_emu {

thread_local const Builtins* current_builtins = nullptr;

}  // namespace spin_emu

namespace {

// ---- errors ------------------------------------------------------------------------------------

// CUDA keeps a per-thread "last error"; the emulator adds a detail text for the errors it raises.
thread_local cudaError_t last_error = cudaSuccess;
thread_local cudaError_t detail_error = cudaSuccess;
thread_local std::string detail;
thread_local std::string error_text;

cudaError_t raise(cudaError_t error, const char* format, ...) __attribute__((format(printf, 2, 3)));
cudaError_t raise(cudaError_t error, const char* format, ...) {
    char text[768];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    last_error = error;
    detail_error = error;
    detail = text;
    return error;
}

// ---- memory ------------------------------------------------------------------------------------

// The emulated device has the host's physical memory: refusing more keeps a huge request from
// reaching malloc (under ASan a huge malloc aborts the process instead of failing).
size_t device_total_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{1} << 34;
}

// ---- devices -------------------------------------------------------------------------------------
// Several emulated devices, so that one JVM can run one rank per device and per thread as on a
// multi-GPU node (docs/ARCHITECTURE.md, "Distribution"). They share the host's memory and its one
// launch lock (blocks run one at a time, whichever device launched them); what is per device is
// what CUDA keeps per device: the current device of each host thread, the default memory pool and
// its accounting, and which device a stream or event belongs to.
constexpr int DEVICE_COUNT = 8;
// CUDA's current device is per host thread, and 0 until the thread sets another.
thread_local int current_device = 0;

bool valid_device(int device) { return device >= 0 && device < DEVICE_COUNT; }

cudaError_t bad_device(const char* call, int device) {
    return raise(cudaErrorInvalidDevice, "%s: the emulator has devices 0 to %d, not %d", call, DEVICE_COUNT - 1,
                 device);
}

struct Allocation {
    size_t bytes;
    bool pooled;  // from cudaMallocAsync (the device's default pool) rather than cudaMalloc
    int device;
};

struct Allocations {
    std::mutex mutex;
    std::unordered_map<void*, Allocation> live;
    size_t used = 0;  // all devices: they share the host's memory
    size_t pool_used[DEVICE_COUNT] = {};
    size_t pool_high[DEVICE_COUNT] = {};
};
Allocations allocations;

cudaError_t allocate(void** pointer, size_t bytes, bool pooled, int device, const char* call) {
    if (pointer == nullptr) return raise(cudaErrorInvalidValue, "%s: NULL result pointer", call);
    *pointer = nullptr;
    if (bytes == 0) return cudaSuccess;
    std::lock_guard<std::mutex> lock(allocations.mutex);
    const size_t total = device_total_bytes();
    if (bytes > total - allocations.used) {
        return raise(cudaErrorMemoryAllocation, "%s of %zu bytes: the emulated device has %zu of %zu bytes free",
                     call, bytes, total - allocations.used, total);
    }
    // Exactly `bytes` (aligned as cudaMalloc's 256 bytes), so ASan's redzone starts right after
    // the last byte a kernel may touch.
    void* memory = nullptr;
    if (posix_memalign(&memory, 256, bytes) != 0) {
        return raise(cudaErrorMemoryAllocation, "%s of %zu bytes: host allocation failed", call, bytes);
    }
    allocations.live.emplace(memory, Allocation{bytes, pooled, device});
    allocations.used += bytes;
    if (pooled) {
        size_t& used = allocations.pool_used[device];
        used += bytes;
        if (used > allocations.pool_high[device]) allocations.pool_high[device] = used;
    }
    *pointer = memory;
    return cudaSuccess;
}

cudaError_t release(void* pointer, const char* call) {
    if (pointer == nullptr) return cudaSuccess;
    std::lock_guard<std::mutex> lock(allocations.mutex);
    auto found = allocations.live.find(pointer);
    if (found == allocations.live.end()) {
        return raise(cudaErrorInvalidValue, "%s(%p): not an allocation of this device, or freed already", call,
                     pointer);
    }
    allocations.used -= found->second.bytes;
    if (found->second.pooled) allocations.pool_used[found->second.device] -= found->second.bytes;
    allocations.live.erase(found);
    std::free(pointer);
    return cudaSuccess;
}

// Page-locked host memory is host memory here too, but a pointer of its own kind: cudaFreeHost
// refuses device memory and cudaFree refuses this, as CUDA does.
struct HostAllocations {
    std::mutex mutex;
    std::unordered_set<void*> live;
};
HostAllocations host_allocations;

// ---- streams and events --------------------------------------------------------------------------

std::mutex handles_mutex;
std::unordered_set<cudaStream_t> live_streams;
std::unordered_set<cudaEvent_t> live_events;

}  // namespace

struct spin_emu_stream {
    unsigned int flags;
    int device;  // current when the stream was created, as in CUDA
};

struct spin_emu_event {
    int device;
    // cudaEventDisableTiming: as on a GPU, such an event cannot be timed, so a benchmark that
    // times with an ordering-only event fails here too instead of only on a GPU.
    bool timing = true;
    bool recorded = false;
    std::chrono::steady_clock::time_point time;
};

struct spin_emu_mem_pool {
    int device;
};

namespace {

spin_emu_mem_pool default_pools[DEVICE_COUNT] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};
static_assert(DEVICE_COUNT == 8, "one default pool per device");

// The device a stream's work runs on: NULL (the legacy default stream) is the current device's.
int device_of(cudaStream_t stream) { return stream == nullptr ? current_device : stream->device; }

// NULL is the legacy default stream, which always exists.
bool valid_stream(cudaStream_t stream) {
    if (stream == nullptr) return true;
    std::lock_guard<std::mutex> lock(handles_mutex);
    return live_streams.count(stream) != 0;
}

bool valid_event(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(handles_mutex);
    return event != nullptr && live_events.count(event) != 0;
}

cudaError_t bad_stream(const char* call, cudaStream_t stream) {
    return raise(cudaErrorInvalidResourceHandle, "%s: %p is not a live stream", call, static_cast<void*>(stream));
}

// ---- the launch: CUDA threads as fibers -------------------------------------------------------------

// Per CUDA thread. ASan's frames are large, and untouched pages cost nothing.
constexpr size_t STACK_BYTES = 256 * 1024;
constexpr size_t GUARD_BYTES = 4096;
constexpr int MAX_BLOCK_THREADS = 1024;
constexpr size_t DEFAULT_SHARED_BYTES = 48 * 1024;
// sm_80 (A100): the most dynamic shared memory a kernel may opt in to.
constexpr size_t OPTIN_SHARED_BYTES = 163 * 1024;
constexpr unsigned char POISON_BYTE = 0xff;  // 0xffffffff is a NaN as fp32, -1 as an integer

struct Stack {
    char* base;  // lowest usable byte; a PROT_NONE guard page lies below it
    size_t size;
};
std::vector<Stack> stacks;  // grown to the largest block seen, reused by every launch

enum class State { runnable, at_barrier, at_warp_op, done, failed };

struct PendingCopy {
    void* dst;
    int bytes;
    unsigned char data[16];
};

// Where a suspended fiber (or the scheduler) resumes.
struct Context {
#ifdef SPIN_EMU_FAST_SWITCH
    void* sp = nullptr;
#else
    ucontext_t uc;
#endif
};

// Saves the running context into `from` and resumes `to`.
inline void switch_context(Context& from, Context& to) {
#ifdef SPIN_EMU_FAST_SWITCH
    spin_emu_switch(&from.sp, to.sp);
#else
    swapcontext(&from.uc, &to.uc);
#endif
}

struct CudaThread {
    Context context;
    spin_emu::Builtins builtins;
    unsigned int linear = 0;
    State state = State::runnable;
    // The warp collective this thread waits in.
    spin_emu::WarpOp op = spin_emu::WarpOp::syncwarp;
    unsigned int op_mask = 0;
    int op_parameter = 0;
    uint32_t in[spin_emu::WARP_WORDS] = {};
    uint32_t out[spin_emu::WARP_WORDS] = {};
    // cp.async copies not yet committed, and the committed groups oldest first.
    std::vector<PendingCopy> open_group;
    std::deque<std::vector<PendingCopy>> committed;
    Stack stack{};
    void* fake_stack = nullptr;
};

struct Block {
    const char* kernel_name = "";
    const std::function<void()>* body = nullptr;
    std::vector<CudaThread> threads;
    unsigned int live = 0;        // threads not yet done
    unsigned int at_barrier = 0;  // threads waiting in __syncthreads
    Context scheduler;
    const void* scheduler_stack_bottom = nullptr;
    size_t scheduler_stack_size = 0;
    CudaThread* running = nullptr;
    std::string failure;  // the first thing that went wrong; stops the launch
    char* dynamic_shared = nullptr;
    size_t dynamic_shared_bytes = 0;
};

thread_local Block* current_block = nullptr;
std::mutex launch_mutex;
std::mutex attributes_mutex;
std::unordered_map<const void*, size_t> max_dynamic_shared;

const char* op_name(spin_emu::WarpOp op) {
    switch (op) {
        case spin_emu::WarpOp::syncwarp: return "__syncwarp";
        case spin_emu::WarpOp::shfl_idx: return "__shfl_sync";
        case spin_emu::WarpOp::shfl_up: return "__shfl_up_sync";
        case spin_emu::WarpOp::shfl_down: return "__shfl_down_sync";
        case spin_emu::WarpOp::shfl_xor: return "__shfl_xor_sync";
        case spin_emu::WarpOp::ballot: return "__ballot_sync";
        case spin_emu::WarpOp::mma_m16n8k16_bf16: return "mma.sync.m16n8k16.bf16";
        case spin_emu::WarpOp::ldmatrix: return "ldmatrix";
    }
    return "?";
}

std::string where(const CudaThread& t) {
    char text[96];
    std::snprintf(text, sizeof text, "thread (%u,%u,%u)", t.builtins.thread_idx.x, t.builtins.thread_idx.y,
                  t.builtins.thread_idx.z);
    return text;
}

// No ASan checks: the section holds ASan's redzones between the variables, which a checked write
// would report. Volatile, so that the compiler cannot turn the loop into a (checked) memset call.
__attribute__((no_sanitize_address)) void poison_static_shared() {
    if (__start_spin_emu_shared == nullptr) return;
    for (volatile char* p = __start_spin_emu_shared; p < __stop_spin_emu_shared; ++p) {
        *p = static_cast<char>(POISON_BYTE);
    }
}

bool in_shared(const Block& b, const void* address, size_t bytes) {
    const char* p = static_cast<const char*>(address);
    if (__start_spin_emu_shared != nullptr && p >= __start_spin_emu_shared && p + bytes <= __stop_spin_emu_shared) {
        return true;
    }
    return b.dynamic_shared != nullptr && p >= b.dynamic_shared && p + bytes <= b.dynamic_shared + b.dynamic_shared_bytes;
}

void switch_to_scheduler(Block& b, CudaThread& t, bool exiting) {
#ifdef SPIN_EMU_ASAN
    // A NULL save slot tells ASan this fiber ends, so it can drop the fiber's fake stack.
    __sanitizer_start_switch_fiber(exiting ? nullptr : &t.fake_stack, b.scheduler_stack_bottom,
                                   b.scheduler_stack_size);
#else
    (void)exiting;
#endif
    switch_context(t.context, b.scheduler);
#ifdef SPIN_EMU_ASAN
    __sanitizer_finish_switch_fiber(t.fake_stack, nullptr, nullptr);
#endif
}

// Stops the launch from inside a CUDA thread: records why and never resumes this fiber (nor,
// since the launch ends, any other). Kernel frames hold no resources to release.
[[noreturn]] void fail_in_thread(const char* format, ...) __attribute__((format(printf, 1, 2)));
void fail_in_thread(const char* format, ...) {
    Block& b = *current_block;
    CudaThread& t = *b.running;
    char text[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (b.failure.empty()) b.failure = where(t) + ": " + text;
    t.state = State::failed;
    switch_to_scheduler(b, t, false);
    std::abort();  // unreachable: the scheduler never resumes a failed thread
}

void fiber_entry() {
    Block& b = *current_block;
    CudaThread& t = *b.running;
#ifdef SPIN_EMU_ASAN
    // First entry: learn the scheduler's stack, to switch back to it.
    __sanitizer_finish_switch_fiber(nullptr, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
    (*b.body)();
    if (!t.open_group.empty() || !t.committed.empty()) {
        fail_in_thread("exited with cp.async copies it never waited for (cp.async.wait_group/wait_all)");
    }
    t.state = State::done;
    --b.live;
    switch_to_scheduler(b, t, true);
}

#ifdef SPIN_EMU_FAST_SWITCH
extern "C" void spin_emu_fiber_main() { fiber_entry(); std::abort(); }
#endif

// Makes `c` start fiber_entry on `stack` when first switched to.
void start_context(Context& c, const Stack& stack) {
#ifdef SPIN_EMU_FAST_SWITCH
    // The frame spin_emu_switch pops: control words, r15..r12, rbx, rbp, then the return address,
    // spin_emu_fiber_start, entered with a 16-byte aligned stack as its call expects.
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack.base) + stack.size) & ~uintptr_t{15};
    void** frame = reinterpret_cast<void**>(top - 16 - 8 * 8);
    uint32_t control[2] = {0, 0};
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(control[0]), "=m"(control[1]));
    std::memcpy(&frame[0], control, sizeof control);
    for (int i = 1; i <= 6; ++i) frame[i] = nullptr;
    frame[7] = reinterpret_cast<void*>(&spin_emu_fiber_start);
    c.sp = frame;
#else
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack.base;
    c.uc.uc_stack.ss_size = stack.size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, fiber_entry, 0);
#endif
}

void resume(Block& b, CudaThread& t) {
    b.running = &t;
    spin_emu::current_builtins = &t.builtins;
#ifdef SPIN_EMU_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, t.stack.base, t.stack.size);
#endif
    switch_context(b.scheduler, t.context);
#ifdef SPIN_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

std::string describe_deadlock(const Block& b) {
    unsigned barrier = 0, warp = 0;
    const CudaThread* example = nullptr;
    for (const CudaThread& t : b.threads) {
        if (t.state == State::at_barrier) ++barrier;
        if (t.state == State::at_warp_op) {
            ++warp;
            if (example == nullptr) example = &t;
        }
    }
    char text[512];
    if (example != nullptr) {
        std::snprintf(text, sizeof text,
                      "deadlock: %u threads wait in __syncthreads and %u in warp collectives that never complete "
                      "(e.g. %s in %s with mask 0x%08x, waiting for lanes that are elsewhere)",
                      barrier, warp, where(*example).c_str(), op_name(example->op), example->op_mask);
    } else {
        std::snprintf(text, sizeof text, "deadlock: %u threads wait in __syncthreads", barrier);
    }
    return text;
}

bool stacks_dirty = false;  // a failed launch abandons fibers mid-frame; their ASan stack poison stays

void run_block(Block& b, uint3 block_idx, dim3 grid, dim3 block) {
    poison_static_shared();
    if (b.dynamic_shared != nullptr) std::memset(b.dynamic_shared, POISON_BYTE, b.dynamic_shared_bytes);
    const unsigned int count = static_cast<unsigned int>(b.threads.size());
    for (unsigned int i = 0; i < count; ++i) {
        CudaThread& t = b.threads[i];
        t.linear = i;
        t.builtins.thread_idx = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
        t.builtins.block_idx = block_idx;
        t.builtins.block_dim = block;
        t.builtins.grid_dim = grid;
        t.state = State::runnable;
        t.open_group.clear();
        t.committed.clear();
        t.stack = stacks[i];
        start_context(t.context, t.stack);
    }
    b.live = count;
    b.at_barrier = 0;
    // Round robin in thread order: each runnable thread runs until it waits or exits.
    while (b.live > 0) {
        bool ran = false;
        for (CudaThread& t : b.threads) {
            if (t.state != State::runnable) continue;
            resume(b, t);
            ran = true;
            if (!b.failure.empty()) return;
        }
        // Exited threads do not hold a barrier up, as on the GPU.
        if (b.at_barrier > 0 && b.at_barrier == b.live) {
            for (CudaThread& t : b.threads) {
                if (t.state == State::at_barrier) t.state = State::runnable;
            }
            b.at_barrier = 0;
            continue;
        }
        if (!ran) {
            b.failure = describe_deadlock(b);
            return;
        }
    }
}

void ensure_stacks(size_t count) {
    while (stacks.size() < count) {
        void* memory = mmap(nullptr, STACK_BYTES + GUARD_BYTES, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (memory == MAP_FAILED) return;
        // Overflowing a fiber stack hits the guard page and faults, rather than corrupting a neighbour.
        mprotect(memory, GUARD_BYTES, PROT_NONE);
        stacks.push_back({static_cast<char*>(memory) + GUARD_BYTES, STACK_BYTES});
    }
}

// ---- what the last lane of a warp collective computes --------------------------------------------------

float bf16_to_float(uint32_t bits) { return __uint_as_float(bits << 16); }

void complete_shuffle(Block& b, unsigned base, unsigned mask, spin_emu::WarpOp op) {
    uint32_t result[32][2];
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(mask >> lane & 1)) continue;
        const CudaThread& t = b.threads[base + lane];
        const int width = static_cast<int>(t.in[2]);
        if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
            fail_in_thread("%s on %s: width %d is not a power of two up to 32", op_name(op), where(t).c_str(), width);
        }
        const int l = static_cast<int>(lane), segment = l / width * width, p = t.op_parameter;
        int source = l;
        switch (op) {
            case spin_emu::WarpOp::shfl_idx: source = segment + (p & (width - 1)); break;
            case spin_emu::WarpOp::shfl_up: source = l - segment >= p ? l - p : l; break;
            case spin_emu::WarpOp::shfl_down: source = l - segment + p < width ? l + p : l; break;
            // Lanes of later segments are out of reach: the caller keeps its own value.
            case spin_emu::WarpOp::shfl_xor: source = (l ^ p) < segment + width ? (l ^ p) : l; break;
            default: break;
        }
        if (source < 0 || source > 31 || !(mask >> source & 1)) {
            // Reading a lane outside the mask is undefined on the GPU: hand over poison.
            result[lane][0] = result[lane][1] = 0xffffffffu;
        } else {
            result[lane][0] = b.threads[base + source].in[0];
            result[lane][1] = b.threads[base + source].in[1];
        }
    }
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(mask >> lane & 1)) continue;
        b.threads[base + lane].out[0] = result[lane][0];
        b.threads[base + lane].out[1] = result[lane][1];
    }
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, by the PTX ISA's fragment layouts
// ("Matrix Fragments for mma.m16n8k16 with floating point type"), with groupID = lane >> 2 and
// threadID_in_group = lane % 4; a .b32 register holds the lower-indexed element in its low half.
//   A (16x16, row):  a_i, i = 0..7 in registers i/2:  row = groupID + 8 for i in {2,3,6,7};
//                    col = threadID_in_group * 2 + (i & 1) + 8 for i >= 4.
//   B (16x8, col):   b_i, i = 0..3 in registers i/2:  row (k) = threadID_in_group * 2 + (i & 1) + 8
//                    for i >= 2; col (n) = groupID.
//   C, D (16x8 f32): c_i, i = 0..3:  row = groupID + 8 for i >= 2; col = threadID_in_group * 2 + (i & 1).
// Lane words: in[0..3] = A registers, in[4..5] = B registers, in[6..9] = C; out[0..3] = D.
void complete_mma(Block& b, unsigned base) {
    float A[16][16], B[16][8], C[16][8];
    for (unsigned lane = 0; lane < 32; ++lane) {
        const uint32_t* in = b.threads[base + lane].in;
        const unsigned group = lane >> 2, tig = lane % 4;
        for (unsigned i = 0; i < 8; ++i) {
            const uint32_t bits = in[i / 2] >> (16 * (i & 1)) & 0xffffu;
            const unsigned row = group + ((i & 2) ? 8 : 0);
            const unsigned col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = bf16_to_float(bits);
        }
        for (unsigned i = 0; i < 4; ++i) {
            const uint32_t bits = in[4 + i / 2] >> (16 * (i & 1)) & 0xffffu;
            const unsigned k = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0);
            B[k][group] = bf16_to_float(bits);
        }
        for (unsigned i = 0; i < 4; ++i) {
            C[group + (i >= 2 ? 8 : 0)][tig * 2 + (i & 1)] = __uint_as_float(in[6 + i]);
        }
    }
    // fp32 accumulation in k order; bf16 x bf16 products are exact in fp32. The tensor core's own
    // summation order and rounding are unspecified, so results match a GPU within tolerance only.
    for (unsigned lane = 0; lane < 32; ++lane) {
        const unsigned group = lane >> 2, tig = lane % 4;
        for (unsigned i = 0; i < 4; ++i) {
            const unsigned row = group + (i >= 2 ? 8 : 0), col = tig * 2 + (i & 1);
            float acc = C[row][col];
            for (unsigned k = 0; k < 16; ++k) acc = std::fma(A[row][k], B[k][col], acc);
            b.threads[base + lane].out[i] = __float_as_uint(acc);
        }
    }
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 (PTX ISA, "ldmatrix"): lane 8*j + r gives
// the address of row r of matrix j (16 bytes, 16-byte aligned, in shared memory). Lane l receives
// in register j the pair (row l/4, columns 2*(l%4) and +1) of matrix j; with .trans, the pair
// (rows 2*(l%4) and +1, column l/4), i.e. matrix j transposed. parameter = count | trans << 8.
void complete_ldmatrix(Block& b, unsigned base, int parameter) {
    const int count = parameter & 0xff;
    const bool trans = (parameter >> 8) != 0;
    uint16_t M[4][8][8];
    for (int j = 0; j < count; ++j) {
        for (int r = 0; r < 8; ++r) {
            const CudaThread& t = b.threads[base + static_cast<unsigned>(8 * j + r)];
            const void* row = reinterpret_cast<const void*>(static_cast<uintptr_t>(t.in[0]) |
                                                            static_cast<uintptr_t>(t.in[1]) << 32);
            if (reinterpret_cast<uintptr_t>(row) % 16 != 0 || !in_shared(b, row, 16)) {
                fail_in_thread("ldmatrix: row address %p from %s is not a 16-byte aligned row in shared memory",
                               row, where(t).c_str());
            }
            std::memcpy(M[j][r], row, 16);
        }
    }
    for (unsigned lane = 0; lane < 32; ++lane) {
        const unsigned quad = lane % 4, row = lane / 4;
        for (int j = 0; j < count; ++j) {
            const uint16_t lo = trans ? M[j][2 * quad][row] : M[j][row][2 * quad];
            const uint16_t hi = trans ? M[j][2 * quad + 1][row] : M[j][row][2 * quad + 1];
            b.threads[base + lane].out[j] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
        }
    }
}

}  // namespace

// ---- device side -----------------------------------------------------------------------------------

namespace spin_emu {

void* dynamic_shared() { return current_block->dynamic_shared; }

void syncthreads() {
    Block& b = *current_block;
    CudaThread& t = *b.running;
    t.state = State::at_barrier;
    ++b.at_barrier;
    switch_to_scheduler(b, t, false);
}

void warp_collective(WarpOp op, unsigned mask, int parameter, const uint32_t* in, int in_words, uint32_t* out,
                     int out_words) {
    Block& b = *current_block;
    CudaThread& t = *b.running;
    const unsigned lane = t.linear % 32, base = t.linear - lane;
    const unsigned lanes = std::min<unsigned>(32, static_cast<unsigned>(b.threads.size()) - base);
    const unsigned existing = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    if (!(mask >> lane & 1)) fail_in_thread("%s with mask 0x%08x, which leaves out the caller's lane %u", op_name(op), mask, lane);
    if ((mask & ~existing) != 0) {
        fail_in_thread("%s with mask 0x%08x names lanes past the block's last thread (warp has lanes 0x%08x)",
                       op_name(op), mask, existing);
    }
    if ((op == WarpOp::mma_m16n8k16_bf16 || op == WarpOp::ldmatrix) && mask != 0xffffffffu) {
        fail_in_thread("%s is .aligned: all 32 lanes of the warp must execute it", op_name(op));
    }
    t.op = op;
    t.op_mask = mask;
    t.op_parameter = parameter;
    for (int i = 0; i < in_words; ++i) t.in[i] = in[i];
    t.state = State::at_warp_op;
    bool complete = true;
    for (unsigned other = 0; other < 32; ++other) {
        if (!(mask >> other & 1)) continue;
        const CudaThread& u = b.threads[base + other];
        if (u.state == State::done) {
            fail_in_thread("%s with mask 0x%08x: lane %u has exited", op_name(op), mask, other);
        }
        if (u.state == State::at_warp_op) {
            if (u.op != op || u.op_mask != mask) {
                fail_in_thread("%s with mask 0x%08x while lane %u of that mask waits in %s with mask 0x%08x",
                               op_name(op), mask, other, op_name(u.op), u.op_mask);
            }
        } else {
            complete = false;
        }
    }
    if (complete) {
        switch (op) {
            case WarpOp::syncwarp: break;
            case WarpOp::shfl_idx:
            case WarpOp::shfl_up:
            case WarpOp::shfl_down:
            case WarpOp::shfl_xor: complete_shuffle(b, base, mask, op); break;
            case WarpOp::ballot: {
                uint32_t votes = 0;
                for (unsigned other = 0; other < 32; ++other) {
                    if ((mask >> other & 1) && b.threads[base + other].in[0] != 0) votes |= 1u << other;
                }
                for (unsigned other = 0; other < 32; ++other) {
                    if (mask >> other & 1) b.threads[base + other].out[0] = votes;
                }
                break;
            }
            case WarpOp::mma_m16n8k16_bf16: complete_mma(b, base); break;
            case WarpOp::ldmatrix: complete_ldmatrix(b, base, parameter); break;
        }
        for (unsigned other = 0; other < 32; ++other) {
            if (mask >> other & 1) b.threads[base + other].state = State::runnable;
        }
    } else {
        switch_to_scheduler(b, t, false);  // the last lane to arrive completes it and wakes us
    }
    for (int i = 0; i < out_words; ++i) out[i] = t.out[i];
}

void cp_async(void* shared_dst, const void* global_src, int bytes, int src_bytes) {
    Block& b = *current_block;
    CudaThread& t = *b.running;
    if (bytes != 4 && bytes != 8 && bytes != 16) fail_in_thread("cp.async of %d bytes: only 4, 8 or 16", bytes);
    if (src_bytes < 0 || src_bytes > bytes) fail_in_thread("cp.async: src-size %d outside 0..%d", src_bytes, bytes);
    if (reinterpret_cast<uintptr_t>(shared_dst) % bytes != 0 || reinterpret_cast<uintptr_t>(global_src) % bytes != 0) {
        fail_in_thread("cp.async of %d bytes from %p to %p: both must be %d-byte aligned", bytes, global_src,
                       shared_dst, bytes);
    }
    if (!in_shared(b, shared_dst, static_cast<size_t>(bytes))) {
        fail_in_thread("cp.async destination %p is not in shared memory", shared_dst);
    }
    PendingCopy copy{shared_dst, bytes, {}};
    // Read now (ASan checks the source here), zero-fill past src-size as the instruction does.
    if (src_bytes > 0) std::memcpy(copy.data, global_src, static_cast<size_t>(src_bytes));
    std::memset(copy.data + src_bytes, 0, static_cast<size_t>(bytes - src_bytes));
    std::memset(shared_dst, POISON_BYTE, static_cast<size_t>(bytes));
    t.open_group.push_back(copy);
}

void cp_async_commit() {
    CudaThread& t = *current_block->running;
    t.committed.push_back(std::move(t.open_group));
    t.open_group.clear();
}

void cp_async_wait(int pending_groups_allowed) {
    CudaThread& t = *current_block->running;
    while (t.committed.size() > static_cast<size_t>(pending_groups_allowed)) {
        for (const PendingCopy& copy : t.committed.front()) std::memcpy(copy.dst, copy.data, static_cast<size_t>(copy.bytes));
        t.committed.pop_front();
    }
}

cudaError_t set_max_dynamic_shared(const void* kernel_id, int bytes) {
    if (bytes < 0 || static_cast<size_t>(bytes) > OPTIN_SHARED_BYTES) {
        return raise(cudaErrorInvalidValue,
                     "cudaFuncAttributeMaxDynamicSharedMemorySize %d: outside 0..%zu (sm_80's opt-in limit)", bytes,
                     OPTIN_SHARED_BYTES);
    }
    std::lock_guard<std::mutex> lock(attributes_mutex);
    max_dynamic_shared[kernel_id] = static_cast<size_t>(bytes);
    return cudaSuccess;
}

void run_grid(const char* kernel_name, const void* kernel_id, dim3 grid, dim3 block, size_t dynamic_shared_bytes,
              cudaStream_t stream, const std::function<void()>& body) {
    if (!valid_stream(stream)) {
        bad_stream(kernel_name, stream);
        return;
    }
    // CUDA refuses a launch into another device's stream; here it would run anyway, so a caller
    // that forgot to make its device current on this thread would pass unnoticed.
    if (device_of(stream) != current_device) {
        raise(cudaErrorInvalidResourceHandle, "%s: the stream belongs to device %d but device %d is current on this thread",
              kernel_name, device_of(stream), current_device);
        return;
    }
    const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
    if (threads == 0 || threads > MAX_BLOCK_THREADS || block.z > 64) {
        raise(cudaErrorInvalidConfiguration, "%s: block (%u,%u,%u) has %llu threads; 1 to 1024 allowed, z at most 64",
              kernel_name, block.x, block.y, block.z, threads);
        return;
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        raise(cudaErrorInvalidConfiguration, "%s: grid (%u,%u,%u) outside 1..2^31-1 x 1..65535 x 1..65535",
              kernel_name, grid.x, grid.y, grid.z);
        return;
    }
    size_t shared_limit = DEFAULT_SHARED_BYTES;
    {
        std::lock_guard<std::mutex> lock(attributes_mutex);
        auto found = max_dynamic_shared.find(kernel_id);
        if (found != max_dynamic_shared.end() && found->second > shared_limit) shared_limit = found->second;
    }
    if (dynamic_shared_bytes > shared_limit) {
        raise(cudaErrorInvalidValue,
              "%s: %zu bytes of dynamic shared memory exceed the %zu allowed (raise it with "
              "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))",
              kernel_name, dynamic_shared_bytes, shared_limit);
        return;
    }

    std::lock_guard<std::mutex> lock(launch_mutex);
    ensure_stacks(threads);
    if (stacks.size() < threads) {
        raise(cudaErrorMemoryAllocation, "%s: no memory for %llu fiber stacks", kernel_name, threads);
        return;
    }
#ifdef SPIN_EMU_ASAN
    if (stacks_dirty) {
        for (const Stack& s : stacks) __asan_unpoison_memory_region(s.base, s.size);
        stacks_dirty = false;
    }
#endif
    Block b;
    b.kernel_name = kernel_name;
    b.body = &body;
    b.threads.resize(threads);
    // Exactly the requested size, so ASan catches an access one past the end.
    std::vector<char> dynamic(dynamic_shared_bytes);
    b.dynamic_shared = dynamic_shared_bytes > 0 ? dynamic.data() : nullptr;
    b.dynamic_shared_bytes = dynamic_shared_bytes;
    Block* const outer = current_block;
    current_block = &b;
    for (unsigned z = 0; z < grid.z && b.failure.empty(); ++z) {
        for (unsigned y = 0; y < grid.y && b.failure.empty(); ++y) {
            for (unsigned x = 0; x < grid.x && b.failure.empty(); ++x) {
                run_block(b, uint3{x, y, z}, grid, block);
                if (!b.failure.empty()) {
                    stacks_dirty = true;
                    raise(cudaErrorLaunchFailure, "%s<<<(%u,%u,%u), (%u,%u,%u)>>> block (%u,%u,%u), %s", kernel_name,
                          grid.x, grid.y, grid.z, block.x, block.y, block.z, x, y, z, b.failure.c_str());
                }
            }
        }
    }
    current_block = outer;
    current_builtins = nullptr;
}

cudaError_t stream_device(cudaStream_t stream, int* device) {
    if (device == nullptr) return raise(cudaErrorInvalidValue, "stream_device: NULL");
    if (!valid_stream(stream)) return bad_stream("stream_device", stream);
    *device = device_of(stream);
    return cudaSuccess;
}

}  // namespace spin_emu

// ---- host API -----------------------------------------------------------------------------------------

cudaError_t cudaGetLastError() {
    const cudaError_t error = last_error;
    last_error = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInitializationError: return "cudaErrorInitializationError";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorStubLibrary: return "cudaErrorStubLibrary";
        case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
        case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorSystemDriverMismatch: return "cudaErrorSystemDriverMismatch";
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
    const char* text = "unknown error";
    switch (error) {
        case cudaSuccess: text = "no error"; break;
        case cudaErrorInvalidValue: text = "invalid argument"; break;
        case cudaErrorMemoryAllocation: text = "out of memory"; break;
        case cudaErrorInitializationError: text = "initialization error"; break;
        case cudaErrorInvalidConfiguration: text = "invalid configuration argument"; break;
        case cudaErrorStubLibrary: text = "CUDA driver is a stub library"; break;
        case cudaErrorInsufficientDriver: text = "CUDA driver version is insufficient for CUDA runtime version"; break;
        case cudaErrorInvalidDeviceFunction: text = "invalid device function"; break;
        case cudaErrorNoDevice: text = "no CUDA-capable device is detected"; break;
        case cudaErrorInvalidDevice: text = "invalid device ordinal"; break;
        case cudaErrorInvalidResourceHandle: text = "invalid resource handle"; break;
        case cudaErrorNotReady: text = "device not ready"; break;
        case cudaErrorLaunchFailure: text = "unspecified launch failure"; break;
        case cudaErrorSystemDriverMismatch: text = "system has unsupported display driver / cuda driver combination"; break;
    }
    if (error != cudaSuccess && error == detail_error && !detail.empty()) {
        error_text = std::string(text) + "; emulator: " + detail;
        return error_text.c_str();
    }
    return text;
}

// The emulator follows the CUDA 13.0 runtime API and stands in for its driver as well.
cudaError_t cudaDriverGetVersion(int* version) {
    if (version == nullptr) return raise(cudaErrorInvalidValue, "cudaDriverGetVersion: NULL");
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
    if (version == nullptr) return raise(cudaErrorInvalidValue, "cudaRuntimeGetVersion: NULL");
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
    if (count == nullptr) return raise(cudaErrorInvalidValue, "cudaGetDeviceCount: NULL");
    *count = DEVICE_COUNT;
    return cudaSuccess;
}

// An sm_80 device: the architecture whose instructions (mma.sync, ldmatrix, cp.async) are emulated.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* props, int device) {
    if (props == nullptr) return raise(cudaErrorInvalidValue, "cudaGetDeviceProperties: NULL");
    if (!valid_device(device)) return bad_device("cudaGetDeviceProperties", device);
    std::memset(props, 0, sizeof *props);
    std::snprintf(props->name, sizeof props->name, "spin CUDA emulator (sm_80 on the host CPU)");
    props->totalGlobalMem = device_total_bytes();
    props->sharedMemPerBlock = DEFAULT_SHARED_BYTES;
    props->sharedMemPerBlockOptin = OPTIN_SHARED_BYTES;
    props->warpSize = 32;
    props->maxThreadsPerBlock = MAX_BLOCK_THREADS;
    props->maxThreadsDim[0] = 1024;
    props->maxThreadsDim[1] = 1024;
    props->maxThreadsDim[2] = 64;
    props->maxGridSize[0] = 0x7fffffff;
    props->maxGridSize[1] = 65535;
    props->maxGridSize[2] = 65535;
    props->major = 8;
    props->minor = 0;
    props->multiProcessorCount = 1;  // blocks run one at a time
    return cudaSuccess;
}

// The same one SM cudaGetDeviceProperties reports.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (value == nullptr) return raise(cudaErrorInvalidValue, "cudaDeviceGetAttribute: NULL");
    if (!valid_device(device)) return bad_device("cudaDeviceGetAttribute", device);
    if (attr != cudaDevAttrMultiProcessorCount) return raise(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute %d", static_cast<int>(attr));
    *value = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    if (device == nullptr) return raise(cudaErrorInvalidValue, "cudaGetDevice: NULL");
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (!valid_device(device)) return bad_device("cudaSetDevice", device);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    if (free_bytes == nullptr || total_bytes == nullptr) return raise(cudaErrorInvalidValue, "cudaMemGetInfo: NULL");
    std::lock_guard<std::mutex> lock(allocations.mutex);
    *total_bytes = device_total_bytes();
    *free_bytes = *total_bytes - allocations.used;
    return cudaSuccess;
}

// Every stream's work ran when it was queued.
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
    if (stream == nullptr) return raise(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: NULL");
    *stream = new spin_emu_stream{flags, current_device};
    std::lock_guard<std::mutex> lock(handles_mutex);
    live_streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(handles_mutex);
    if (stream == nullptr || live_streams.erase(stream) == 0) {
        return raise(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: %p is not a live stream", static_cast<void*>(stream));
    }
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    return valid_stream(stream) ? cudaSuccess : bad_stream("cudaStreamSynchronize", stream);
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    return valid_stream(stream) ? cudaSuccess : bad_stream("cudaStreamQuery", stream);
}

// Work before the event has run already, so the wait is satisfied as soon as it is queued.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
    if (!valid_stream(stream)) return bad_stream("cudaStreamWaitEvent", stream);
    if (!valid_event(event)) return raise(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: not a live event");
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
    if (event == nullptr) return raise(cudaErrorInvalidValue, "cudaEventCreate: NULL");
    *event = new spin_emu_event();
    (*event)->device = current_device;
    std::lock_guard<std::mutex> lock(handles_mutex);
    live_events.insert(*event);
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
    cudaError_t status = cudaEventCreate(event);
    if (status == cudaSuccess) (*event)->timing = (flags & cudaEventDisableTiming) == 0;
    return status;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(handles_mutex);
    if (event == nullptr || live_events.erase(event) == 0) {
        return raise(cudaErrorInvalidResourceHandle, "cudaEventDestroy: not a live event");
    }
    delete event;
    return cudaSuccess;
}

// The stream's earlier work is done when this is called, so the event completes at once.
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!valid_stream(stream)) return bad_stream("cudaEventRecord", stream);
    if (!valid_event(event)) return raise(cudaErrorInvalidResourceHandle, "cudaEventRecord: not a live event");
    if (event->device != device_of(stream)) {
        return raise(cudaErrorInvalidResourceHandle, "cudaEventRecord: the event belongs to device %d, the stream to %d",
                     event->device, device_of(stream));
    }
    event->recorded = true;
    event->time = std::chrono::steady_clock::now();
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    return valid_event(event) ? cudaSuccess
                              : raise(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: not a live event");
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    return valid_event(event) ? cudaSuccess : raise(cudaErrorInvalidResourceHandle, "cudaEventQuery: not a live event");
}

cudaError_t cudaEventElapsedTime(float* millis, cudaEvent_t start, cudaEvent_t end) {
    if (millis == nullptr) return raise(cudaErrorInvalidValue, "cudaEventElapsedTime: NULL");
    if (!valid_event(start) || !valid_event(end)) {
        return raise(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: not a live event");
    }
    if (!start->recorded || !end->recorded) {
        return raise(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was never recorded");
    }
    if (!start->timing || !end->timing) {
        return raise(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
    }
    *millis = std::chrono::duration<float, std::milli>(end->time - start->time).count();
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
    return allocate(pointer, bytes, false, current_device, "cudaMalloc");
}

cudaError_t cudaFree(void* pointer) { return release(pointer, "cudaFree"); }

cudaError_t cudaMallocHost(void** pointer, size_t bytes) {
    if (pointer == nullptr) return raise(cudaErrorInvalidValue, "cudaMallocHost: NULL result pointer");
    *pointer = nullptr;
    if (bytes == 0) return cudaSuccess;
    void* memory = nullptr;
    // Page-aligned, as pinned pages are.
    if (posix_memalign(&memory, 4096, bytes) != 0) {
        return raise(cudaErrorMemoryAllocation, "cudaMallocHost of %zu bytes: host allocation failed", bytes);
    }
    std::lock_guard<std::mutex> lock(host_allocations.mutex);
    host_allocations.live.insert(memory);
    *pointer = memory;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    std::lock_guard<std::mutex> lock(host_allocations.mutex);
    if (host_allocations.live.erase(pointer) == 0) {
        return raise(cudaErrorInvalidValue, "cudaFreeHost(%p): not page-locked memory from cudaMallocHost, or freed already",
                     pointer);
    }
    std::free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** pointer, size_t bytes, cudaStream_t stream) {
    if (!valid_stream(stream)) return bad_stream("cudaMallocAsync", stream);
    // From the default pool of the stream's device, as cudaMallocAsync does.
    return allocate(pointer, bytes, true, device_of(stream), "cudaMallocAsync");
}

cudaError_t cudaFreeAsync(void* pointer, cudaStream_t stream) {
    if (!valid_stream(stream)) return bad_stream("cudaFreeAsync", stream);
    return release(pointer, "cudaFreeAsync");
}

namespace {
bool valid_pool(cudaMemPool_t pool) { return pool >= default_pools && pool < default_pools + DEVICE_COUNT; }
}  // namespace

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
    if (pool == nullptr) return raise(cudaErrorInvalidValue, "cudaDeviceGetDefaultMemPool: NULL");
    if (!valid_device(device)) return bad_device("cudaDeviceGetDefaultMemPool", device);
    *pool = &default_pools[device];
    return cudaSuccess;
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
    if (!valid_pool(pool) || value == nullptr) return raise(cudaErrorInvalidValue, "cudaMemPoolGetAttribute: bad pool or NULL");
    std::lock_guard<std::mutex> lock(allocations.mutex);
    uint64_t* out = static_cast<uint64_t*>(value);
    switch (attr) {
        case cudaMemPoolAttrReservedMemCurrent:
        case cudaMemPoolAttrUsedMemCurrent: *out = allocations.pool_used[pool->device]; return cudaSuccess;
        case cudaMemPoolAttrReservedMemHigh:
        case cudaMemPoolAttrUsedMemHigh: *out = allocations.pool_high[pool->device]; return cudaSuccess;
    }
    return raise(cudaErrorInvalidValue, "cudaMemPoolGetAttribute: attribute %d is not emulated", static_cast<int>(attr));
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
    if (!valid_pool(pool) || value == nullptr) return raise(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: bad pool or NULL");
    if ((attr != cudaMemPoolAttrUsedMemHigh && attr != cudaMemPoolAttrReservedMemHigh) ||
        *static_cast<uint64_t*>(value) != 0) {
        return raise(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: only resetting a high-water mark to 0");
    }
    std::lock_guard<std::mutex> lock(allocations.mutex);
    allocations.pool_high[pool->device] = allocations.pool_used[pool->device];
    return cudaSuccess;
}

cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t) {
    if (!valid_pool(pool)) return raise(cudaErrorInvalidValue, "cudaMemPoolTrimTo: bad pool");
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (!valid_stream(stream)) return bad_stream("cudaMemcpyAsync", stream);
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
        return raise(cudaErrorInvalidValue, "cudaMemcpyAsync: kind %d", static_cast<int>(kind));
    }
    if (bytes == 0) return cudaSuccess;
    if (dst == nullptr || src == nullptr) return raise(cudaErrorInvalidValue, "cudaMemcpyAsync: NULL pointer");
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) { return cudaMemsetAsync(dst, value, bytes, nullptr); }

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
    if (!valid_stream(stream)) return bad_stream("cudaMemsetAsync", stream);
    if (bytes == 0) return cudaSuccess;
    if (dst == nullptr) return raise(cudaErrorInvalidValue, "cudaMemsetAsync: NULL pointer");
    std::memset(dst, value, bytes);
    return cudaSuccess;
}
