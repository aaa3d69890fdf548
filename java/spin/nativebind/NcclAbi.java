package spin.nativebind;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The NCCL C entry points that spin calls, bound in Java: one method per function, each turning
 * an {@code ncclResult_t} other than {@code ncclSuccess} into an {@link NcclException} carrying
 * the result, {@code ncclGetErrorString}'s text and, where the library has it,
 * {@code ncclGetLastError}'s. Communicators and streams travel as address-only segments.
 *
 * <p>One instance per loaded library ({@link #forRuntime}): the real libnccl (looked up by name,
 * never linked) for {@link CudaRuntime#load()}, or the CUDA emulator's stand-in exported by
 * libspin_native_emu.so (native/emu/nccl_emu.cpp) for {@link CudaRuntime#loadEmulated()}. The
 * handles are final fields of that instance rather than static: both libraries may be in use in
 * one process. The constants are nccl.h's; the stand-in has them in native/emu/nccl_abi.h, and
 * VendorHeadersTest compares both with NVIDIA's header.
 */
public final class NcclAbi {
    /** ncclResult_t */
    public static final int SUCCESS = 0;
    public static final int UNHANDLED_CUDA_ERROR = 1;
    public static final int SYSTEM_ERROR = 2;
    public static final int INTERNAL_ERROR = 3;
    public static final int INVALID_ARGUMENT = 4;
    public static final int INVALID_USAGE = 5;
    /** A peer failed or aborted (NCCL 2.13 and later). */
    public static final int REMOTE_ERROR = 6;
    public static final int IN_PROGRESS = 7;
    /** ncclDataType_t ncclFloat32 */
    public static final int FLOAT32 = 7;
    /** ncclDataType_t ncclFloat64 */
    public static final int FLOAT64 = 8;
    /** ncclDataType_t ncclBfloat16 */
    public static final int BFLOAT16 = 9;
    /** ncclRedOp_t ncclSum */
    public static final int SUM = 0;
    /** sizeof(ncclUniqueId), NCCL_UNIQUE_ID_BYTES: the id that rank 0 hands to every other rank. */
    public static final int UNIQUE_ID_BYTES = 128;
    /** ncclUniqueId, passed by value to ncclCommInitRank. */
    static final MemoryLayout UNIQUE_ID = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(UNIQUE_ID_BYTES, JAVA_BYTE).withName("internal"));

    private static final Linker LINKER = Linker.nativeLinker();
    private static final Map<SymbolLookup, NcclAbi> BOUND = new ConcurrentHashMap<>();

    private final String library;
    private final SymbolLookup symbols;
    private final MethodHandle getVersionCall;
    private final MethodHandle getErrorStringCall;
    /** Null where the library predates ncclGetLastError (NCCL 2.13). */
    private final MethodHandle getLastErrorCall;
    private final MethodHandle getUniqueIdCall;
    private final MethodHandle commInitRankCall;
    private final MethodHandle groupStartCall;
    private final MethodHandle groupEndCall;
    private final MethodHandle allGatherCall;
    private final MethodHandle reduceScatterCall;
    private final MethodHandle allReduceCall;
    private final MethodHandle broadcastCall;
    private final MethodHandle commAbortCall;
    private final MethodHandle commDestroyCall;
    private final MethodHandle commGetAsyncErrorCall;
    private final MethodHandle commCountCall;
    private final MethodHandle commUserRankCall;

    private NcclAbi(String library, SymbolLookup symbols) {
        this.library = library;
        this.symbols = symbols;
        getVersionCall = bind("ncclGetVersion", status(ADDRESS));
        getErrorStringCall = bind("ncclGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        getLastErrorCall = symbols.find("ncclGetLastError")
                .map(symbol -> LINKER.downcallHandle(symbol, FunctionDescriptor.of(ADDRESS, ADDRESS)))
                .orElse(null);
        getUniqueIdCall = bind("ncclGetUniqueId", status(ADDRESS));
        commInitRankCall = bind("ncclCommInitRank", status(ADDRESS, JAVA_INT, UNIQUE_ID, JAVA_INT));
        groupStartCall = bind("ncclGroupStart", status());
        groupEndCall = bind("ncclGroupEnd", status());
        allGatherCall = bind("ncclAllGather", status(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        reduceScatterCall = bind("ncclReduceScatter", status(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        allReduceCall = bind("ncclAllReduce", status(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        broadcastCall = bind("ncclBroadcast", status(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        commAbortCall = bind("ncclCommAbort", status(ADDRESS));
        commDestroyCall = bind("ncclCommDestroy", status(ADDRESS));
        commGetAsyncErrorCall = bind("ncclCommGetAsyncError", status(ADDRESS, ADDRESS));
        commCountCall = bind("ncclCommCount", status(ADDRESS, ADDRESS));
        commUserRankCall = bind("ncclCommUserRank", status(ADDRESS, ADDRESS));
    }

    /**
     * The NCCL that goes with {@code cuda}'s devices: the library's own nccl* symbols when it has
     * them (the emulator's stand-in), else the installed libnccl; an {@link IllegalStateException}
     * saying why when there is none or it lacks an entry point.
     */
    public static NcclAbi forRuntime(CudaRuntime cuda) {
        NativeLibrary.Loaded own = cuda.library();
        if (own.symbols().find("ncclCommInitRank").isPresent()) {
            return BOUND.computeIfAbsent(own.symbols(), lookup -> new NcclAbi(own.path().toString(), lookup));
        }
        OptionalLibrary nccl = Nccl.LIBRARY.orElseThrow(
                () -> new IllegalStateException("NCCL unavailable: " + Nccl.status().detail()));
        return BOUND.computeIfAbsent(nccl.symbols(), lookup -> new NcclAbi(nccl.loadedName(), lookup));
    }

    /** The library these calls go to, for messages. */
    public String library() {
        return library;
    }

    /** NCCL's version, 10000 * major + 100 * minor + patch. */
    public int version() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) getVersionCall.invokeExact(out)), "ncclGetVersion");
            return out.get(JAVA_INT, 0);
        }
    }

    /** A fresh {@link #UNIQUE_ID_BYTES}-byte id for a new group of ranks. */
    public byte[] uniqueId() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(UNIQUE_ID);
            check(StatusCall.invoke(() -> (int) getUniqueIdCall.invokeExact(out)), "ncclGetUniqueId");
            return out.toArray(JAVA_BYTE);
        }
    }

    /**
     * Rank {@code rank} of {@code nranks} of the group named by {@code id}, on the device current on
     * this thread. Outside a group it returns once every rank has joined.
     */
    public MemorySegment commInitRank(int nranks, byte[] id, int rank) {
        if (id.length != UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an NCCL unique id has " + UNIQUE_ID_BYTES + " bytes, not " + id.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            MemorySegment idValue = arena.allocate(UNIQUE_ID);
            idValue.copyFrom(MemorySegment.ofArray(id));
            check(StatusCall.invoke(() -> (int) commInitRankCall.invokeExact(out, nranks, idValue, rank)), "ncclCommInitRank");
            return out.get(ADDRESS, 0);
        }
    }

    public void groupStart() {
        check(StatusCall.invoke(() -> (int) groupStartCall.invokeExact()), "ncclGroupStart");
    }

    public void groupEnd() {
        check(StatusCall.invoke(() -> (int) groupEndCall.invokeExact()), "ncclGroupEnd");
    }

    public void allGather(MemorySegment send, MemorySegment recv, long sendCount, int type, MemorySegment comm,
            MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) allGatherCall.invokeExact(send, recv, sendCount, type, comm, stream)),
                "ncclAllGather");
    }

    public void reduceScatter(MemorySegment send, MemorySegment recv, long recvCount, int type, int op,
            MemorySegment comm, MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) reduceScatterCall.invokeExact(send, recv, recvCount, type, op, comm, stream)),
                "ncclReduceScatter");
    }

    public void allReduce(MemorySegment send, MemorySegment recv, long count, int type, int op, MemorySegment comm,
            MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) allReduceCall.invokeExact(send, recv, count, type, op, comm, stream)),
                "ncclAllReduce");
    }

    public void broadcast(MemorySegment send, MemorySegment recv, long count, int type, int root, MemorySegment comm,
            MemorySegment stream) {
        check(StatusCall.invoke(() -> (int) broadcastCall.invokeExact(send, recv, count, type, root, comm, stream)),
                "ncclBroadcast");
    }

    public void commAbort(MemorySegment comm) {
        check(StatusCall.invoke(() -> (int) commAbortCall.invokeExact(comm)), "ncclCommAbort");
    }

    public void commDestroy(MemorySegment comm) {
        check(StatusCall.invoke(() -> (int) commDestroyCall.invokeExact(comm)), "ncclCommDestroy");
    }

    /** The communicator's asynchronous error: {@link #SUCCESS}, or what stopped it (such as {@link #REMOTE_ERROR}). */
    public int commGetAsyncError(MemorySegment comm) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) commGetAsyncErrorCall.invokeExact(comm, out)), "ncclCommGetAsyncError");
            return out.get(JAVA_INT, 0);
        }
    }

    public int commCount(MemorySegment comm) {
        return intOut(commCountCall, comm, "ncclCommCount");
    }

    public int commUserRank(MemorySegment comm) {
        return intOut(commUserRankCall, comm, "ncclCommUserRank");
    }

    /** ncclGetErrorString's text for {@code result}. */
    public String errorString(int result) {
        try {
            MemorySegment text = (MemorySegment) getErrorStringCall.invokeExact(result);
            return text.equals(MemorySegment.NULL) ? "result " + result : text.reinterpret(4096).getString(0);
        } catch (Throwable t) {
            throw new IllegalStateException("ncclGetErrorString failed", t);
        }
    }

    private int intOut(MethodHandle call, MemorySegment comm, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(StatusCall.invoke(() -> (int) call.invokeExact(comm, out)), name);
            return out.get(JAVA_INT, 0);
        }
    }

    /** ncclGetLastError's text (what the last failing call on this thread, or process, said), or empty. */
    private String lastError() {
        if (getLastErrorCall == null) {
            return "";
        }
        try {
            MemorySegment text = (MemorySegment) getLastErrorCall.invokeExact(MemorySegment.NULL);
            return text.equals(MemorySegment.NULL) ? "" : text.reinterpret(4096).getString(0);
        } catch (Throwable t) {
            return "";
        }
    }

    private void check(int result, String call) {
        if (result != SUCCESS) {
            throw new NcclException(call, result, errorString(result), lastError());
        }
    }

    private static FunctionDescriptor status(MemoryLayout... arguments) {
        return FunctionDescriptor.of(JAVA_INT, arguments);
    }

    private MethodHandle bind(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = symbols.find(name)
                .orElseThrow(() -> new IllegalStateException(name + " is missing from " + library));
        return LINKER.downcallHandle(symbol, descriptor);
    }
}
