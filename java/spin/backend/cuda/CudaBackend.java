package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import spin.backend.BFloat16;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceSpec;
import spin.backend.Operands;
import spin.backend.SamplingRule;
import spin.backend.SpinLossType;
import spin.backend.StepGradient;
import spin.backend.Tensor;
import spin.nativebind.CudaEvent;
import spin.nativebind.CudaRuntime;
import spin.nativebind.DeviceMemory;

/**
 * The Backend on a GPU through libspin_native (or on the CUDA emulator through
 * libspin_native_emu, the same kernels run as host fibers): every op is a kernel of ours or a
 * cuBLASLt product, queued on the device's compute stream, and uploads go through pinned staging
 * without waiting; only reads (and the default methods that return a host value by reading) wait
 * for the device.
 *
 * <p>Each op family lives in its own class beside this one, named as its kernel file
 * ({@link Rope} ↔ kernels/rope.cu ↔ spin.backend.cpu.Rope); this class only dispatches. Tensors are
 * allocated from the device's stream-ordered pool ({@link #memoryUsage()} reports current and peak
 * bytes) and freed back to it on close.
 */
public final class CudaBackend implements Backend {
    private static final java.util.Set<DType> COMPUTE_TYPES = java.util.Set.of(DType.F32, DType.BF16);

    private final DType computeType;
    private final CudaDevice device;
    private final String name;
    private final Elementwise elementwise;
    private final Casts casts;
    private final Embedding embedding;
    private final Gemm gemm;
    private final RmsNorm rmsnorm;
    private final Rope rope;
    private final Attention attention;
    private final ScatterRows scatterRows;
    private final Sampling sampling;
    private final Swiglu swiglu;
    private final LogProb logprob;
    private final SpinLoss spinLoss;
    private final Optimizers optimizers;
    private final Reductions reductions;

    /**
     * Opens {@code spec} (a {@code cuda:N} GPU through {@code runtime} = {@link CudaRuntime#load()}, or
     * {@code cuda-emu:0} through {@link CudaRuntime#loadEmulated()}) for models computing in
     * {@code computeType} (F32 or BF16).
     */
    public CudaBackend(CudaRuntime runtime, DeviceSpec spec, DType computeType) {
        if (!COMPUTE_TYPES.contains(computeType)) {
            throw new IllegalArgumentException("a CUDA device computes in F32 or BF16, not " + computeType);
        }
        this.computeType = computeType;
        this.device = new CudaDevice(runtime, spec);
        this.name = spec + " (" + device.properties().name() + ")";
        elementwise = new Elementwise(this, device);
        casts = new Casts(this, device);
        embedding = new Embedding(this, device);
        gemm = new Gemm(this, device);
        rmsnorm = new RmsNorm(this, device);
        rope = new Rope(this, device);
        attention = new Attention(this, device);
        scatterRows = new ScatterRows(this, device);
        sampling = new Sampling(this, device);
        swiglu = new Swiglu(this, device);
        logprob = new LogProb(this, device);
        spinLoss = new SpinLoss(this, device);
        optimizers = new Optimizers(this, device);
        reductions = new Reductions(this, device, elementwise);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public DType computeType() {
        return computeType;
    }

    @Override
    public java.util.Set<DType> computeTypes() {
        return COMPUTE_TYPES;
    }

    /** The device's resources (streams, event, pool), for this package's collectives and tests. */
    CudaDevice device() {
        return device;
    }

    // ---------------------------------------------------------------- collectives (spin.dist)

    /** The runtime whose library runs this device: the real one or the emulator's (which carries its own NCCL). */
    public CudaRuntime runtime() {
        return device.runtime();
    }

    /** The CUDA device ordinal of this backend ({@code N} of {@code cuda:N} or {@code cuda-emu:N}). */
    public int deviceIndex() {
        return device.spec().index();
    }

    /**
     * Makes this backend's device current on the calling thread, as a communicator's creation
     * needs (NCCL binds a communicator to the device current when it is made).
     */
    public void makeCurrent() {
        device.makeCurrentForCollectives();
    }

    /**
     * The communication stream's handle, for a collective to be queued on, after making it wait
     * for the work queued on the compute stream so far (the collective's inputs). The device is
     * current on the calling thread on return. Call {@link #endCommunication()} once the
     * collective is queued.
     */
    public MemorySegment beginCommunication() {
        return device.communicationAfterCompute().handle();
    }

    /**
     * Ends what {@link #beginCommunication()} began, leaving the compute stream free to run on:
     * returns a new event (the caller closes it) marking the collectives queued since, which {@link #computeAfter} makes
     * compute wait for when their outputs are needed (at once, or later for a prefetch: the compute
     * stream keeps working while the collective runs). Until then the collective's tensors must
     * stay open and its outputs unread.
     */
    public CudaEvent endCommunication() {
        return device.communicationMark();
    }

    /** Makes the compute stream wait for a mark of {@link #endCommunication()} (which its caller closes). */
    public void computeAfter(CudaEvent mark) {
        device.computeAfter(mark);
    }

    /** Bytes the device's stream-ordered pool has allocated (tensors and op scratch) now and at most. */
    @Override
    public Optional<MemoryUsage> memoryUsage() {
        CudaRuntime.PoolUsage usage = device.poolUsage();
        return Optional.of(new MemoryUsage(usage.currentBytes(), usage.peakBytes()));
    }

    @Override
    public void resetPeakMemory() {
        device.resetPoolPeak();
    }

    @Override
    public OptionalLong hostSynchronizations() {
        return OptionalLong.of(device.synchronizations());
    }

    // ---------------------------------------------------------------- memory

    @Override
    public long memoryBytes() {
        return device.properties().totalMemoryBytes();
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        long bytes = Tensor.elementCount(shape) * dtype.byteSize();
        MemorySegment memory = bytes == 0 ? MemorySegment.NULL : device.allocate(bytes);
        if (bytes > 0) {
            DeviceMemory.zero(device.compute(), memory);
        }
        return new Tensor(this, dtype, shape, memory, bytes == 0 ? null : () -> device.free(memory));
    }

    @Override
    public Tensor fromHost(float[] values, int... shape) {
        Tensor t = allocate(DType.F32, shape);
        write(t, values);
        return t;
    }

    @Override
    public Tensor fromHost(int[] values, int... shape) {
        Tensor t = allocate(DType.I32, shape);
        write(t, values);
        return t;
    }

    @Override
    public void write(Tensor dst, float[] values) {
        Operands.requireOn(this, dst);
        Operands.requireLength(dst, values.length);
        switch (dst.dtype()) {
            case F32 -> upload(dst, MemorySegment.ofArray(values));
            case BF16 -> {
                short[] bits = new short[values.length];
                for (int i = 0; i < values.length; i++) {
                    bits[i] = BFloat16.fromFloat(values[i]);
                }
                upload(dst, MemorySegment.ofArray(bits));
            }
            case I32, F64 -> throw new IllegalArgumentException("write(float[]) into " + dst.dtype() + " tensor " + dst);
        }
    }

    @Override
    public void write(Tensor dst, int[] values) {
        Operands.requireDtype(this, dst, DType.I32, "dst");
        Operands.requireLength(dst, values.length);
        upload(dst, MemorySegment.ofArray(values));
    }

    @Override
    public void write(Tensor dst, double[] values) {
        Operands.requireDtype(this, dst, DType.F64, "dst");
        Operands.requireLength(dst, values.length);
        upload(dst, MemorySegment.ofArray(values));
    }

    @Override
    public void upload(Tensor dst, MemorySegment stored, DType storedType) {
        Operands.requireOn(this, dst);
        if (stored.byteSize() != dst.size() * storedType.byteSize()) {
            throw new IllegalArgumentException(stored.byteSize() + " bytes of " + storedType + " cannot fill " + dst);
        }
        if (storedType == dst.dtype()) {
            upload(dst, stored);
            return;
        }
        if (storedType != DType.BF16 && storedType != DType.F32 || dst.dtype() != DType.F32 && dst.dtype() != DType.BF16) {
            throw new IllegalArgumentException("upload of stored " + storedType + " into " + dst + " is not supported");
        }
        // The stored bytes cross the bus as they are and are widened or rounded on the device, by
        // the cast every other conversion uses.
        try (Tensor staged = allocate(storedType, dst.shape())) {
            upload(staged, stored);
            casts.cast(dst, staged);
        }
    }

    @Override
    public float[] read(Tensor src) {
        Operands.requireOn(this, src);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = download(src, arena);
            return switch (src.dtype()) {
                case F32 -> host.toArray(JAVA_FLOAT);
                case BF16 -> {
                    float[] out = new float[Math.toIntExact(src.size())];
                    for (int i = 0; i < out.length; i++) {
                        out[i] = BFloat16.toFloat(host.getAtIndex(JAVA_SHORT, i));
                    }
                    yield out;
                }
                case I32 -> throw new IllegalArgumentException("read() of I32 tensor " + src + "; use readInts");
                case F64 -> throw new IllegalArgumentException("read() of F64 tensor " + src + "; use readDoubles");
            };
        }
    }

    @Override
    public int[] readInts(Tensor src) {
        Operands.requireDtype(this, src, DType.I32, "src");
        try (Arena arena = Arena.ofConfined()) {
            return download(src, arena).toArray(JAVA_INT);
        }
    }

    @Override
    public double[] readDoubles(Tensor src) {
        Operands.requireDtype(this, src, DType.F64, "src");
        try (Arena arena = Arena.ofConfined()) {
            return download(src, arena).toArray(JAVA_DOUBLE);
        }
    }

    /** Queues the copy of {@code host} (heap or native, free to reuse on return) into {@code dst}. */
    private void upload(Tensor dst, MemorySegment host) {
        if (host.byteSize() > 0) {
            device.upload(dst.memory(), host);
        }
    }

    private MemorySegment download(Tensor src, Arena arena) {
        MemorySegment host = arena.allocate(Math.max(1, src.byteSize()), 8).asSlice(0, src.byteSize());
        if (src.byteSize() > 0) {
            device.download(host, src.memory());
        }
        return host;
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        Operands.requireOn(this, dst, src);
        if (dst.dtype() != src.dtype() || dst.size() != src.size()) {
            throw new IllegalArgumentException("copy needs equal dtype and size: " + dst + " <- " + src);
        }
        if (src.byteSize() > 0) {
            DeviceMemory.copy(device.compute(), dst.memory(), src.memory());
        }
    }

    @Override
    public void fill(Tensor dst, float value) {
        elementwise.fill(dst, value);
    }

    /**
     * Times the work on the compute stream (every op's stream) with a pair of timing events recorded
     * before and after it: device time, not queueing time. Each call waits for the end event once
     * (one host synchronisation). On the emulator the events carry host wall time.
     */
    @Override
    public WorkTimer workTimer() {
        return device.workTimer();
    }

    @Override
    public void synchronize() {
        device.synchronize();
    }

    @Override
    public void close() {
        gemm.close();
        device.close();
    }

    // ---------------------------------------------------------------- element-wise

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        elementwise.add(out, a, b);
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        elementwise.add(dst, dst, src);
    }

    @Override
    public void scale(Tensor dst, float factor) {
        elementwise.scale(dst, factor);
    }

    @Override
    public void cast(Tensor out, Tensor in) {
        casts.cast(out, in);
    }

    // ---------------------------------------------------------------- embedding, linear, norms

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        embedding.forward(out, ids, table);
    }

    @Override
    public void embeddingBackward(Tensor dTable, Tensor ids, Tensor dOut) {
        embedding.backward(dTable, ids, dOut);
    }

    @Override
    public void matmulForward(Tensor out, Tensor in, Tensor weight) {
        gemm.forward(out, in, weight);
    }

    @Override
    public void matmulBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight) {
        gemm.backward(dIn, dWeight, dOut, in, weight);
    }

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
        rmsnorm.forward(out, rstd, in, weight, eps);
    }

    @Override
    public void addRmsnormForward(Tensor sum, Tensor normed, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps) {
        rmsnorm.addForward(sum, normed, rstd, a, b, weight, eps);
    }

    @Override
    public void rmsnormBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd) {
        rmsnorm.backward(dIn, dWeight, dOut, in, weight, rstd);
    }

    @Override
    public void ropeForward(Tensor out, Tensor in, Tensor positions, float theta) {
        rope.forward(out, in, positions, theta);
    }

    @Override
    public void ropeBackward(Tensor dIn, Tensor dOut, Tensor positions, float theta) {
        rope.backward(dIn, dOut, positions, theta);
    }

    @Override
    public void qkvRopeForward(Tensor q, Tensor k, Tensor v, Tensor qkv, Tensor positions, float theta) {
        rope.qkvForward(q, k, v, qkv, positions, theta);
    }

    @Override
    public void qkvRopeBackward(Tensor dqkv, Tensor dq, Tensor dk, Tensor dv, Tensor positions, float theta) {
        rope.qkvBackward(dqkv, dq, dk, dv, positions, theta);
    }

    // ---------------------------------------------------------------- attention

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        attention.forward(out, lse, q, k, v, keyMask, window);
    }

    /**
     * {@link #attentionForward} always on the simple kernel, never the tensor-core one: the
     * reference that tests compare the tensor-core kernel with (the two differ by P's rounding to bf16).
     */
    void attentionForwardSimple(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        attention.forwardSimple(out, lse, q, k, v, keyMask, window);
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
            Tensor keyMask, Tensor out, Tensor lse, int window) {
        attention.backward(dq, dk, dv, dOut, q, k, v, keyMask, out, lse, window);
    }

    @Override
    public void attentionCachedForward(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable,
            Tensor querySeq, Tensor queryPos, int blockSize, int window) {
        attention.cachedForward(out, q, kCache, vCache, blockTable, querySeq, queryPos, blockSize, window, 0);
    }

    /**
     * {@link #attentionCachedForward} with the decode kernel forced to {@code splits} slices of the
     * context (0: the library's rule, as attentionCachedForward uses): for tests of the split path.
     */
    void attentionCachedForwardSplits(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable,
            Tensor querySeq, Tensor queryPos, int blockSize, int window, int splits) {
        attention.cachedForward(out, q, kCache, vCache, blockTable, querySeq, queryPos, blockSize, window, splits);
    }

    /**
     * {@link #attentionCachedForward} always on the simple kernel (one block per token and query
     * head): the reference the decode kernel is tested against.
     */
    void attentionCachedForwardSimple(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable,
            Tensor querySeq, Tensor queryPos, int blockSize, int window) {
        attention.cachedForwardSimple(out, q, kCache, vCache, blockTable, querySeq, queryPos, blockSize, window);
    }

    @Override
    public void scatterRows(Tensor dst, Tensor src, Tensor rows) {
        scatterRows.scatter(dst, src, rows);
    }

    // ---------------------------------------------------------------- sampling

    @Override
    public void argmaxRows(Tensor out, Tensor logits) {
        sampling.argmax(out, logits);
    }

    @Override
    public void sampleRows(Tensor out, Tensor logits, SamplingRule rule, Tensor streams, Tensor draws, Tensor history,
            Tensor historyLengths) {
        sampling.sample(out, logits, rule, streams, draws, history, historyLengths);
    }

    // ---------------------------------------------------------------- MLP, log-probs, losses

    @Override
    public void swigluForward(Tensor out, Tensor gate, Tensor up) {
        swiglu.forward(out, gate, up);
    }

    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up) {
        swiglu.backward(dGate, dUp, dOut, gate, up);
    }

    @Override
    public void logprobForward(Tensor logp, Tensor lse, Tensor logits, Tensor labels) {
        logprob.forward(logp, lse, logits, labels);
    }

    @Override
    public void logprobBackward(Tensor dLogits, Tensor dLogp, Tensor logits, Tensor labels, Tensor lse) {
        logprob.backward(dLogits, dLogp, logits, labels, lse);
    }

    @Override
    public void rowSumForward(Tensor out, Tensor in) {
        spinLoss.rowSumForward(out, in);
    }

    @Override
    public void rowSumBackward(Tensor dIn, Tensor dOut) {
        spinLoss.rowSumBackward(dIn, dOut);
    }

    @Override
    public void spinLossForward(Tensor stats, Tensor policyReal, Tensor policyGenerated, Tensor opponentReal,
            Tensor opponentGenerated, float beta, SpinLossType type) {
        spinLoss.forward(stats, policyReal, policyGenerated, opponentReal, opponentGenerated, beta, type);
    }

    @Override
    public void spinLossBackward(Tensor dPolicyReal, Tensor dPolicyGenerated, Tensor policyReal, Tensor policyGenerated,
            Tensor opponentReal, Tensor opponentGenerated, float beta, SpinLossType type, float lossScale) {
        spinLoss.backward(dPolicyReal, dPolicyGenerated, policyReal, policyGenerated, opponentReal, opponentGenerated,
                beta, type, lossScale);
    }

    // ---------------------------------------------------------------- optimizers and reductions

    @Override
    public void rmspropStep(Tensor param, Tensor grad, Tensor squareAvg, Tensor computeCopy, StepGradient gradient,
            float lr, float alpha, float eps, float weightDecay) {
        optimizers.rmsprop(param, grad, squareAvg, computeCopy, gradient, lr, alpha, eps, weightDecay);
    }

    @Override
    public void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, Tensor computeCopy,
            StepGradient gradient, float lr, float beta1, float beta2, float eps, float weightDecay, long step) {
        optimizers.adamw(param, grad, expAvg, expAvgSq, computeCopy, gradient, lr, beta1, beta2, eps, weightDecay, step);
    }

    @Override
    public void sum(Tensor out, Tensor in, double divisor) {
        reductions.sum(out, in, divisor);
    }

    @Override
    public double sumOfSquares(Tensor in) {
        return reductions.sumOfSquares(in);
    }

    @Override
    public void accumulateWeighted(Tensor sums, Tensor values, double weight) {
        reductions.accumulateWeighted(sums, values, weight);
    }

    @Override
    public double globalNorm(List<Tensor> tensors) {
        return reductions.globalNorm(tensors);
    }

    @Override
    public void clipGradNorm(Tensor norm, Tensor grads, double maxNorm) {
        reductions.clipGradNorm(norm, grads, maxNorm);
    }

    @Override
    public void sumOfSquares(Tensor out, Tensor in) {
        reductions.sumOfSquares(out, in);
    }

    @Override
    public void clipGradNorm(Tensor norm, Tensor grads, Tensor sumOfSquares, double maxNorm) {
        reductions.clipGradNorm(norm, grads, sumOfSquares, maxNorm);
    }

    @Override
    public void clipFactor(Tensor norm, Tensor factor, Tensor sumOfSquares, double maxNorm) {
        reductions.clipFactor(norm, factor, sumOfSquares, maxNorm);
    }
}
