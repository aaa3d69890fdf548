package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import spin.backend.AttentionShape;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/**
 * Flash-style attention forward and deterministic backward, and paged decoding: kernels/attention.cu,
 * on F32 or BF16 activations (one compute dtype per call); lse is F32.
 */
final class Attention {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle forward;
    private final MethodHandle forwardSimple;
    private final MethodHandle backwardScratchBytes;
    private final MethodHandle backward;
    private final MethodHandle cachedForward;
    private final MethodHandle cachedForwardSimple;
    private final MethodHandle cachedScratchBytes;

    Attention(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_attention_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        forwardSimple = device.bind("spin_attention_forward_simple", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        backwardScratchBytes = device.bind("spin_attention_backward_scratch_bytes", JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS);
        backward = device.bind("spin_attention_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT);
        cachedForward = device.bind("spin_attention_cached_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS);
        cachedForwardSimple = device.bind("spin_attention_cached_forward_simple", ADDRESS, JAVA_INT, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT);
        cachedScratchBytes = device.bind("spin_attention_cached_forward_scratch_bytes", JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS);
    }

    /** The library picks the kernel: tensor cores for BF16 with head dim 64 or 128, else the simple one. */
    void forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        forward(forward, "spin_attention_forward", out, lse, q, k, v, keyMask, window);
    }

    /** Always the simple kernel (spin_attention_forward_simple): the reference the tensor-core one is tested against. */
    void forwardSimple(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        forward(forwardSimple, "spin_attention_forward_simple", out, lse, q, k, v, keyMask, window);
    }

    private void forward(MethodHandle entry, String name, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
            Tensor keyMask, int window) {
        Operands.requireOn(backend, keyMask);
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, q, k, v));
        Operands.requireF32(backend, lse);
        AttentionShape s = AttentionShape.of(q, k, v, keyMask, window);
        Operands.requireSameSize(out, q, "q");
        Operands.requireLength(lse, s.lseSize());
        var stream = device.compute().handle();
        device.launch(name, () -> (int) entry.invokeExact(stream, dtype, out.memory(), lse.memory(), q.memory(),
                k.memory(), v.memory(), keyMask.memory(), s.batch(), s.time(), s.heads(), s.kvHeads(), s.headDim(),
                window));
    }

    void backward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor keyMask,
            Tensor out, Tensor lse, int window) {
        Operands.requireOn(backend, keyMask);
        int dtype = NativeDType.of(Operands.requireActivations(backend, dq, dk, dv, dOut, q, k, v, out));
        Operands.requireF32(backend, lse);
        AttentionShape s = AttentionShape.of(q, k, v, keyMask, window);
        for (Tensor t : new Tensor[] {dq, dOut, out}) {
            Operands.requireSameSize(t, q, "q");
        }
        Operands.requireSameSize(dk, k, "k");
        Operands.requireSameSize(dv, v, "v");
        Operands.requireLength(lse, s.lseSize());
        long bytes;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(JAVA_LONG);
            device.launch("spin_attention_backward_scratch_bytes",
                    () -> (int) backwardScratchBytes.invokeExact(s.batch(), s.time(), s.heads(), result));
            bytes = result.get(JAVA_LONG, 0);
        }
        try (Scratch scratch = new Scratch(device, bytes)) {
            var stream = device.compute().handle();
            device.launch("spin_attention_backward", () -> (int) backward.invokeExact(stream, dtype, dq.memory(),
                    dk.memory(), dv.memory(), scratch.memory(), dOut.memory(), q.memory(), k.memory(), v.memory(),
                    keyMask.memory(), out.memory(), lse.memory(), s.batch(), s.time(), s.heads(), s.kvHeads(),
                    s.headDim(), window));
        }
    }

    /**
     * The decode kernel (one block per token and kv head, split over the context where the tokens
     * are too few to fill the device); {@code splits} 0 lets the library's rule choose, more forces
     * that many (tests). The split partials live in op scratch from the stream-ordered pool, as the
     * backward's do: no device allocation reaches the driver per decode step once the pool holds them.
     */
    void cachedForward(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable, Tensor querySeq,
            Tensor queryPos, int blockSize, int window, int splits) {
        cached(false, splits, out, q, kCache, vCache, blockTable, querySeq, queryPos, blockSize, window);
    }

    /** Always the simple kernel (one block per token and query head): the reference for the decode kernel. */
    void cachedForwardSimple(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable, Tensor querySeq,
            Tensor queryPos, int blockSize, int window) {
        cached(true, 0, out, q, kCache, vCache, blockTable, querySeq, queryPos, blockSize, window);
    }

    private void cached(boolean simple, int splits, Tensor out, Tensor q, Tensor kCache, Tensor vCache,
            Tensor blockTable, Tensor querySeq, Tensor queryPos, int blockSize, int window) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, q, kCache, vCache));
        AttentionShape s = AttentionShape.cached(q, kCache, vCache, window);
        Operands.requireSameSize(out, q, "q");
        Operands.requireDtype(backend, blockTable, DType.I32, "blockTable");
        Operands.requireDtype(backend, querySeq, DType.I32, "querySeq");
        Operands.requireDtype(backend, queryPos, DType.I32, "queryPos");
        Operands.requireLength(querySeq, s.batch());
        Operands.requireLength(queryPos, s.batch());
        if (blockTable.rank() != 2 || blockSize <= 0 || kCache.dim(0) % blockSize != 0) {
            throw new IllegalArgumentException("cached attention needs a block table [S, maxBlocks] and caches of whole"
                    + " blocks of " + blockSize + " rows, got " + blockTable + ", " + kCache);
        }
        int sequences = blockTable.dim(0), maxBlocks = blockTable.dim(1);
        if (splits < 0) {
            throw new IllegalArgumentException("splits must be >= 0 (0 = the library's rule), got " + splits);
        }
        var stream = device.compute().handle();
        int m = s.batch(), h = s.heads(), kvh = s.kvHeads(), d = s.headDim(), rows = kCache.dim(0);
        if (simple) {
            device.launch("spin_attention_cached_forward_simple", () -> (int) cachedForwardSimple.invokeExact(stream,
                    dtype, out.memory(), q.memory(), kCache.memory(), vCache.memory(), blockTable.memory(),
                    querySeq.memory(), queryPos.memory(), m, h, kvh, d, rows, sequences, maxBlocks, blockSize, window));
            return;
        }
        long bytes;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(JAVA_LONG);
            device.launch("spin_attention_cached_forward_scratch_bytes", () -> (int) cachedScratchBytes.invokeExact(
                    m, h, kvh, d, maxBlocks, blockSize, window, splits, result));
            bytes = result.get(JAVA_LONG, 0);
        }
        try (Scratch scratch = new Scratch(device, bytes)) {
            device.launch("spin_attention_cached_forward", () -> (int) cachedForward.invokeExact(stream, dtype,
                    out.memory(), q.memory(), kCache.memory(), vCache.memory(), blockTable.memory(), querySeq.memory(),
                    queryPos.memory(), m, h, kvh, d, rows, sequences, maxBlocks, blockSize, window, splits,
                    scratch.memory()));
        }
    }
}
