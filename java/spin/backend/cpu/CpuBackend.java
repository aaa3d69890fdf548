package spin.backend.cpu;

import static spin.backend.Operands.requireLength;
import static spin.backend.Operands.requireSameSize;
import static spin.backend.Operands.rows;
import static spin.backend.cpu.Mem.F;
import static spin.backend.cpu.Mem.f;
import static spin.backend.cpu.Mem.i32;
import static spin.backend.cpu.Mem.load;
import static spin.backend.cpu.Mem.store;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import spin.backend.BFloat16;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.FrozenWeights;
import spin.backend.Operands;
import spin.backend.SamplingRule;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.StepGradient;
import spin.backend.Tensor;

/**
 * The reference backend: Java on the host, Vector API inner loops, work split over a fixed thread
 * pool in chunks that do not depend on the thread count (see {@link CpuParallel}). Every op writes
 * each output element from exactly one chunk, in a fixed order, so results are bit-identical for
 * any thread count.
 */
public final class CpuBackend implements Backend {
    /** Elements per chunk for element-wise loops and reductions; fixes the reduction order. */
    private static final int ELEMENT_CHUNK = 1 << 15;

    private final CpuParallel pool;
    private final CpuAttention attention;
    private final PackedWeights packedWeights;

    public CpuBackend(int threads) {
        this.pool = new CpuParallel(threads);
        this.attention = new CpuAttention(pool);
        this.packedWeights = new PackedWeights(pool);
    }

    /** A backend using every available processor. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    @Override
    public String name() {
        return "cpu(" + pool.threads() + " threads)";
    }

    @Override
    public long memoryBytes() {
        return hostMemoryBytes();
    }

    /** The machine's RAM, or its container's memory limit. */
    public static long hostMemoryBytes() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
    }

    public int threads() {
        return pool.threads();
    }

    // ---------------------------------------------------------------- memory

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        long bytes = Tensor.elementCount(shape) * dtype.byteSize();
        Arena arena = Arena.ofShared();
        MemorySegment memory = arena.allocate(bytes, 64);
        return new Tensor(this, dtype, shape, memory, arena::close);
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
        requireLength(t, values.length);
        MemorySegment.copy(values, 0, t.memory(), ValueLayout.JAVA_INT, 0, values.length);
        return t;
    }

    @Override
    public void write(Tensor dst, float[] values) {
        Operands.requireOn(this, dst);
        requireLength(dst, values.length);
        switch (dst.dtype()) {
            case F32 -> MemorySegment.copy(values, 0, dst.memory(), ValueLayout.JAVA_FLOAT, 0, values.length);
            case BF16 -> {
                MemorySegment m = dst.memory();
                for (int i = 0; i < values.length; i++) {
                    Mem.bf16(m, i, BFloat16.fromFloat(values[i]));
                }
            }
            case I32, F64 -> throw new IllegalArgumentException("write(float[]) into " + dst.dtype() + " tensor " + dst);
        }
    }

    @Override
    public void write(Tensor dst, int[] values) {
        requireDtype(dst, DType.I32, "dst");
        requireLength(dst, values.length);
        MemorySegment.copy(values, 0, dst.memory(), ValueLayout.JAVA_INT, 0, values.length);
    }

    @Override
    public void write(Tensor dst, double[] values) {
        requireDtype(dst, DType.F64, "dst");
        requireLength(dst, values.length);
        MemorySegment.copy(values, 0, dst.memory(), ValueLayout.JAVA_DOUBLE, 0, values.length);
    }

    @Override
    public void upload(Tensor dst, MemorySegment stored, DType storedType) {
        Operands.requireOn(this, dst);
        if (stored.byteSize() != dst.size() * storedType.byteSize()) {
            throw new IllegalArgumentException(stored.byteSize() + " bytes of " + storedType + " cannot fill " + dst);
        }
        if (storedType == dst.dtype() && storedType != DType.I32) {
            MemorySegment.copy(stored, 0, dst.memory(), 0, stored.byteSize());
            return;
        }
        MemorySegment m = dst.memory();
        if (storedType == DType.F32 && dst.dtype() == DType.BF16) {
            elementwise(dst.size(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    Mem.bf16(m, i, BFloat16.fromFloat(stored.getAtIndex(LE_FLOAT, i)));
                }
            });
            return;
        }
        if (storedType != DType.BF16 || dst.dtype() != DType.F32) {
            throw new IllegalArgumentException("upload of stored " + storedType + " into " + dst + " is not supported");
        }
        elementwise(dst.size(), (start, end) -> {
            for (long i = start; i < end; i++) {
                f(m, i, BFloat16.toFloat(stored.getAtIndex(LE_SHORT, i)));
            }
        });
    }

    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    @Override
    public float[] read(Tensor src) {
        Operands.requireOn(this, src);
        int n = Math.toIntExact(src.size());
        float[] out = new float[n];
        switch (src.dtype()) {
            case F32 -> MemorySegment.copy(src.memory(), ValueLayout.JAVA_FLOAT, 0, out, 0, n);
            case BF16 -> {
                MemorySegment m = src.memory();
                for (int i = 0; i < n; i++) {
                    out[i] = BFloat16.toFloat(Mem.bf16(m, i));
                }
            }
            case I32 -> throw new IllegalArgumentException("read() of I32 tensor " + src + "; use readInts");
            case F64 -> throw new IllegalArgumentException("read() of F64 tensor " + src + "; use readDoubles");
        }
        return out;
    }

    @Override
    public double[] readDoubles(Tensor src) {
        requireDtype(src, DType.F64, "src");
        return src.memory().toArray(ValueLayout.JAVA_DOUBLE);
    }

    @Override
    public int[] readInts(Tensor src) {
        requireDtype(src, DType.I32, "src");
        int n = Math.toIntExact(src.size());
        int[] out = new int[n];
        MemorySegment.copy(src.memory(), ValueLayout.JAVA_INT, 0, out, 0, n);
        return out;
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        Operands.requireOn(this, dst, src);
        if (dst.dtype() != src.dtype() || dst.size() != src.size()) {
            throw new IllegalArgumentException("copy needs equal dtype and size: " + dst + " <- " + src);
        }
        MemorySegment.copy(src.memory(), 0, dst.memory(), 0, src.byteSize());
    }

    @Override
    public void fill(Tensor dst, float value) {
        requireDtype(dst, DType.F32, "dst");
        MemorySegment m = dst.memory();
        FloatVector v = FloatVector.broadcast(F, value);
        elementwise(dst.size(), (start, end) -> {
            long i = start;
            for (long bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
                store(v, m, i);
            }
            for (; i < end; i++) {
                f(m, i, value);
            }
        });
    }

    @Override
    public void synchronize() {
        // Host ops complete before they return.
    }

    @Override
    public void close() {
        pool.close();
    }

    // ---------------------------------------------------------------- element-wise

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        requireF32(out, a, b);
        requireSameSize(out, a, "a");
        requireSameSize(out, b, "b");
        MemorySegment o = out.memory(), x = a.memory(), y = b.memory();
        elementwise(out.size(), (start, end) -> addRange(o, x, y, start, end));
    }

    /** o[i] = x[i] + y[i] over [start, end): add's body, also the first half of addRmsnormForward. */
    private static void addRange(MemorySegment o, MemorySegment x, MemorySegment y, long start, long end) {
        long i = start;
        for (long bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
            store(load(x, i).add(load(y, i)), o, i);
        }
        for (; i < end; i++) {
            f(o, i, f(x, i) + f(y, i));
        }
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        add(dst, dst, src);
    }

    @Override
    public void scale(Tensor dst, float factor) {
        requireF32(dst);
        MemorySegment m = dst.memory();
        elementwise(dst.size(), (start, end) -> Mem.scale(factor, m, start, (int) (end - start)));
    }

    @Override
    public void cast(Tensor out, Tensor in) {
        requireSameSize(out, in, "in");
        if (out.dtype() == in.dtype()) {
            copy(out, in);
            return;
        }
        MemorySegment o = out.memory(), x = in.memory();
        if (in.dtype() == DType.F32 && out.dtype() == DType.BF16) {
            elementwise(in.size(), (start, end) -> roundToBf16(o, x, start, end));
        } else if (in.dtype() == DType.BF16 && out.dtype() == DType.F32) {
            elementwise(in.size(), (start, end) -> {
                for (long i = start; i < end; i++) {
                    f(o, i, BFloat16.toFloat(Mem.bf16(x, i)));
                }
            });
        } else {
            throw new IllegalArgumentException("cast supports F32 <-> BF16, not " + in + " -> " + out);
        }
    }

    /** o[i] = x[i] rounded to BF16 over [start, end): cast's body, also the optimizers' compute copy. */
    private static void roundToBf16(MemorySegment o, MemorySegment x, long start, long end) {
        for (long i = start; i < end; i++) {
            Mem.bf16(o, i, BFloat16.fromFloat(f(x, i)));
        }
    }

    // ---------------------------------------------------------------- embedding

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        requireF32(out, table);
        requireDtype(ids, DType.I32, "ids");
        int vocab = table.dim(0), c = table.dim(-1);
        int n = Math.toIntExact(ids.size());
        requireLength(out, (long) n * c);
        MemorySegment o = out.memory(), idm = ids.memory(), t = table.memory();
        pool.forRange(n, Math.max(1, ELEMENT_CHUNK / c), (start, end) -> {
            for (int row = start; row < end; row++) {
                int id = checkedId(idm, row, vocab);
                MemorySegment.copy(t, (long) id * c * Float.BYTES, o, (long) row * c * Float.BYTES, (long) c * Float.BYTES);
            }
        });
    }

    @Override
    public void embeddingBackward(Tensor dTable, Tensor ids, Tensor dOut) {
        requireF32(dTable, dOut);
        requireDtype(ids, DType.I32, "ids");
        int vocab = dTable.dim(0), c = dTable.dim(-1);
        int n = Math.toIntExact(ids.size());
        requireLength(dOut, (long) n * c);
        MemorySegment dt = dTable.memory(), idm = ids.memory(), d = dOut.memory();
        for (int row = 0; row < n; row++) {
            checkedId(idm, row, vocab);
        }
        // Columns are split across threads, rows visited in order: a repeated id sums in row order.
        int colGrain = Math.max(F.length(), 256);
        pool.forRange(c, colGrain, (colStart, colEnd) -> {
            for (int row = 0; row < n; row++) {
                int id = i32(idm, row);
                Mem.axpy(1f, d, (long) row * c + colStart, dt, (long) id * c + colStart, colEnd - colStart);
            }
        });
    }

    private static int checkedId(MemorySegment ids, int row, int vocab) {
        int id = i32(ids, row);
        if (id < 0 || id >= vocab) {
            throw new IllegalArgumentException("token id " + id + " at position " + row + " is outside the vocabulary [0, " + vocab + ")");
        }
        return id;
    }

    // ---------------------------------------------------------------- linear layers

    @Override
    public void matmulForward(Tensor out, Tensor in, Tensor weight) {
        requireF32(out, in, weight);
        int outFeatures = weight.dim(0), inFeatures = weight.dim(1);
        int rows = rows(in, inFeatures, "in");
        requireLength(out, (long) rows * outFeatures);
        Gemm.PackedB packed = packedWeights.packed(weight);
        if (packed != null) {
            Gemm.gemm(pool, false, rows, in.memory(), 0, inFeatures, packed, out.memory(), 0, outFeatures, false);
            return;
        }
        Gemm.gemm(pool, false, true, rows, outFeatures, inFeatures,
                in.memory(), 0, inFeatures, weight.memory(), 0, inFeatures, out.memory(), 0, outFeatures, false);
    }

    /**
     * Frozen weights are packed into the GEMM layout ({@link Gemm.PackedB}) by the first product
     * that uses them, and dropped when their last freeze closes; see {@link PackedWeights} for the
     * staleness guarantees and the memory limit. While packed, a weight's products of any number of
     * rows go through the packed kernel, so every output row has the same bits whatever the number
     * of rows beside it; unfrozen products of fewer than 12 rows sum in {@link GemmFewRows}' order.
     */
    @Override
    public FrozenWeights freezeWeights(List<Tensor> weights) {
        return packedWeights.freeze(weights);
    }

    /** Bytes held by packed copies of frozen weights. */
    public long packedWeightBytes() {
        return packedWeights.bytes();
    }

    @Override
    public void matmulBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight) {
        requireF32(dWeight, dOut, in, weight);
        int outFeatures = weight.dim(0), inFeatures = weight.dim(1);
        int rows = rows(in, inFeatures, "in");
        requireLength(dOut, (long) rows * outFeatures);
        requireSameSize(dWeight, weight, "weight");
        if (dIn != null) {
            requireF32(dIn);
            requireSameSize(dIn, in, "in");
            Gemm.gemm(pool, false, false, rows, inFeatures, outFeatures,
                    dOut.memory(), 0, outFeatures, weight.memory(), 0, inFeatures, dIn.memory(), 0, inFeatures, false);
        }
        Gemm.gemm(pool, true, false, outFeatures, inFeatures, rows,
                dOut.memory(), 0, outFeatures, in.memory(), 0, inFeatures, dWeight.memory(), 0, inFeatures, true);
    }

    // ---------------------------------------------------------------- normalisation

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
        requireF32(out, rstd, in, weight);
        int c = Math.toIntExact(weight.size());
        int n = rows(in, c, "in");
        requireSameSize(out, in, "in");
        requireLength(rstd, n);
        MemorySegment o = out.memory(), r = rstd.memory(), x = in.memory(), w = weight.memory();
        pool.forRange(n, rowGrain(c), (start, end) -> {
            for (int row = start; row < end; row++) {
                rmsnormRow(o, r, x, w, row, c, eps);
            }
        });
    }

    @Override
    public void addRmsnormForward(Tensor sum, Tensor normed, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps) {
        requireF32(sum, normed, rstd, a, b, weight);
        int c = Math.toIntExact(weight.size());
        int n = rows(sum, c, "sum");
        requireSameSize(sum, a, "a");
        requireSameSize(sum, b, "b");
        requireSameSize(normed, sum, "sum");
        requireLength(rstd, n);
        Operands.requireDisjoint(normed, "normed", sum, a, b);
        MemorySegment s = sum.memory(), o = normed.memory(), r = rstd.memory(), x = a.memory(), y = b.memory(),
                w = weight.memory();
        // Row by row, so the norm reads its row of the sum while it is still in cache.
        pool.forRange(n, rowGrain(c), (start, end) -> {
            for (int row = start; row < end; row++) {
                long base = (long) row * c;
                addRange(s, x, y, base, base + c);
                rmsnormRow(o, r, s, w, row, c, eps);
            }
        });
    }

    /** out[row,:] and rstd[row] of rmsnormForward: the one row body both norms run. */
    private static void rmsnormRow(MemorySegment o, MemorySegment r, MemorySegment x, MemorySegment w, int row, int c,
            float eps) {
        long base = (long) row * c;
        float inv = (float) (1.0 / Math.sqrt(Mem.dot(x, base, x, base, c) / c + eps));
        f(r, row, inv);
        FloatVector iv = FloatVector.broadcast(F, inv);
        int j = 0;
        for (int bound = F.loopBound(c); j < bound; j += F.length()) {
            store(load(x, base + j).mul(iv).mul(load(w, j)), o, base + j);
        }
        for (; j < c; j++) {
            f(o, base + j, f(x, base + j) * inv * f(w, j));
        }
    }

    @Override
    public void rmsnormBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd) {
        requireF32(dIn, dWeight, dOut, in, weight, rstd);
        int c = Math.toIntExact(weight.size());
        int n = rows(in, c, "in");
        requireSameSize(dIn, in, "in");
        requireSameSize(dOut, in, "in");
        requireSameSize(dWeight, weight, "weight");
        MemorySegment dx = dIn.memory(), dw = dWeight.memory(), dy = dOut.memory(), x = in.memory(),
                w = weight.memory(), r = rstd.memory();
        // dx = rstd * (dy*w - xhat * mean(dy*w*xhat)), xhat = x * rstd
        pool.forRange(n, rowGrain(c), (start, end) -> {
            for (int row = start; row < end; row++) {
                long base = (long) row * c;
                float inv = f(r, row);
                float dot = 0f;
                for (int j = 0; j < c; j++) {
                    dot += f(dy, base + j) * f(w, j) * f(x, base + j);
                }
                float meanTerm = dot * inv / c;
                for (int j = 0; j < c; j++) {
                    float xhat = f(x, base + j) * inv;
                    f(dx, base + j, inv * (f(dy, base + j) * f(w, j) - xhat * meanTerm));
                }
            }
        });
        // dw += sum over rows of dy * xhat: columns split, rows summed in order.
        pool.forRange(c, Math.max(F.length(), 256), (colStart, colEnd) -> {
            int width = colEnd - colStart;
            float[] acc = new float[width];
            for (int row = 0; row < n; row++) {
                long base = (long) row * c + colStart;
                float inv = f(r, row);
                for (int j = 0; j < width; j++) {
                    acc[j] += f(dy, base + j) * (f(x, base + j) * inv);
                }
            }
            for (int j = 0; j < width; j++) {
                f(dw, colStart + j, f(dw, colStart + j) + acc[j]);
            }
        });
    }

    // ---------------------------------------------------------------- rotary embedding

    @Override
    public void ropeForward(Tensor out, Tensor in, Tensor positions, float theta) {
        rotate(out, in, positions, theta, 1f);
    }

    @Override
    public void ropeBackward(Tensor dIn, Tensor dOut, Tensor positions, float theta) {
        rotate(dIn, dOut, positions, theta, -1f);
    }

    private void rotate(Tensor out, Tensor in, Tensor positions, float theta, float direction) {
        requireF32(out, in);
        requireDtype(positions, DType.I32, "positions");
        requireSameSize(out, in, "in");
        int[] shape = Operands.ropeShape(in);
        int b = shape[0], t = shape[1], heads = shape[2], d = shape[3], row = heads * d;
        requireLength(positions, (long) b * t);
        rotateRows(b * t, d, positions, theta, direction,
                new RopePart(out.memory(), 0, row, in.memory(), 0, row, heads, true));
    }

    @Override
    public void qkvRopeForward(Tensor q, Tensor k, Tensor v, Tensor qkv, Tensor positions, float theta) {
        splitRotate(qkv, q, k, v, positions, theta, true);
    }

    @Override
    public void qkvRopeBackward(Tensor dqkv, Tensor dq, Tensor dk, Tensor dv, Tensor positions, float theta) {
        splitRotate(dqkv, dq, dk, dv, positions, theta, false);
    }

    /** The fused split: from the stacked rows into q, k, v (forward), or from them back into the stacked rows. */
    private void splitRotate(Tensor stacked, Tensor q, Tensor k, Tensor v, Tensor positions, float theta, boolean forward) {
        requireF32(stacked, q, k, v);
        requireDtype(positions, DType.I32, "positions");
        int[] s = Operands.qkvShape(q, k, v, stacked, positions);
        int h = s[2], kvh = s[3], d = s[4], width = (h + 2 * kvh) * d;
        MemorySegment rows = stacked.memory();
        RopePart[] parts = new RopePart[3];
        Tensor[] dense = {q, k, v};
        int[] heads = {h, kvh, kvh}, at = {0, h * d, (h + kvh) * d};
        for (int i = 0; i < 3; i++) {
            MemorySegment m = dense[i].memory();
            int row = heads[i] * d;
            boolean rotated = i < 2;
            parts[i] = forward ? new RopePart(m, 0, row, rows, at[i], width, heads[i], rotated)
                    : new RopePart(rows, at[i], width, m, 0, row, heads[i], rotated);
        }
        rotateRows(s[0] * s[1], d, positions, theta, forward ? 1f : -1f, parts);
    }

    /**
     * The heads of one tensor in every (b, t) row: row r's heads start at element {@code outAt + r *
     * outRow} of out and {@code inAt + r * inRow} of in; rotated, or copied as they are.
     */
    private record RopePart(MemorySegment out, long outAt, int outRow, MemorySegment in, long inAt, int inRow, int heads,
            boolean rotated) {}

    /**
     * Rotates (or copies) the parts' heads in each of {@code rows} rows, pairs (i, i + D/2) by the
     * row's angle * direction; each row's angles are looked up or computed once for all parts.
     */
    private void rotateRows(int rows, int d, Tensor positions, float theta, float direction, RopePart... parts) {
        int half = d / 2, rowElements = 0;
        for (RopePart p : parts) {
            rowElements += p.heads() * d;
        }
        MemorySegment pos = positions.memory();
        int maxPosition = 0;
        for (int bt = 0; bt < rows; bt++) {
            maxPosition = Math.max(maxPosition, i32(pos, bt));
        }
        Rope.Table table = ropeTable(d, theta, maxPosition);
        float[] invFreq = table == null ? Rope.inverseFrequencies(d, theta) : null;
        pool.forRange(rows, Math.max(1, 4096 / Math.max(1, rowElements)), (start, end) -> {
            float[] cos = new float[half];
            float[] sin = new float[half];
            for (int bt = start; bt < end; bt++) {
                int position = i32(pos, bt);
                float[] c = cos, s = sin;
                int row = 0;
                if (table != null && position >= 0) {
                    c = table.cos();
                    s = table.sin();
                    row = position * half;
                } else {
                    Rope.angles(position, invFreq != null ? invFreq : Rope.inverseFrequencies(d, theta), cos, sin);
                }
                for (RopePart p : parts) {
                    long outBase = p.outAt() + (long) bt * p.outRow(), inBase = p.inAt() + (long) bt * p.inRow();
                    if (!p.rotated()) {
                        MemorySegment.copy(p.in(), inBase * Float.BYTES, p.out(), outBase * Float.BYTES,
                                (long) p.heads() * d * Float.BYTES);
                        continue;
                    }
                    for (int h = 0; h < p.heads(); h++) {
                        rotateHead(p.out(), outBase + (long) h * d, p.in(), inBase + (long) h * d, half, c, s, row,
                                direction);
                    }
                }
            }
        });
    }

    /**
     * (x1, x2) = (x[i], x[i + half]) becomes (x1 cos - x2 sin', x2 cos + x1 sin'), sin' = direction *
     * sin, for i < half, from x at {@code xBase} into o at {@code oBase}: each product rounded, then
     * the sum (no FMA), in vectors or one by one alike.
     */
    private static void rotateHead(MemorySegment o, long oBase, MemorySegment x, long xBase, int half, float[] cos,
            float[] sin, int row, float direction) {
        int i = 0;
        for (int bound = F.loopBound(half); i < bound; i += F.length()) {
            FloatVector x1 = load(x, xBase + i), x2 = load(x, xBase + i + half);
            FloatVector c = FloatVector.fromArray(F, cos, row + i);
            FloatVector s = FloatVector.fromArray(F, sin, row + i).mul(direction);
            store(x1.mul(c).sub(x2.mul(s)), o, oBase + i);
            store(x2.mul(c).add(x1.mul(s)), o, oBase + i + half);
        }
        for (; i < half; i++) {
            float x1 = f(x, xBase + i), x2 = f(x, xBase + i + half);
            float s = direction * sin[row + i];
            f(o, oBase + i, x1 * cos[row + i] - x2 * s);
            f(o, oBase + i + half, x2 * cos[row + i] + x1 * s);
        }
    }

    /** The latest table of rope angles, regrown when a call needs more positions or other frequencies. */
    private volatile Rope.Table ropeTable;

    /** A table covering positions 0 .. maxPosition, or null when that would be too large. */
    private Rope.Table ropeTable(int headDim, float theta, int maxPosition) {
        Rope.Table table = ropeTable;
        if (table != null && table.covers(headDim, theta, maxPosition)) {
            return table;
        }
        long wanted = Math.max(1024, Long.highestOneBit(Math.max(1, maxPosition)) * 2);
        if (table != null && table.headDim() == headDim) {
            wanted = Math.max(wanted, 2L * table.positions());
        }
        if (wanted * headDim / 2 > Rope.Table.MAX_FLOATS) {
            wanted = Rope.Table.MAX_FLOATS / Math.max(1, headDim / 2);
            if (maxPosition >= wanted) {
                return null;
            }
        }
        table = Rope.Table.of(headDim, theta, (int) wanted);
        ropeTable = table;
        return table;
    }

    // ---------------------------------------------------------------- attention

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        Operands.requireOn(this, out, lse, q, k, v, keyMask);
        Operands.requireF32(this, q, k, v);
        attention.forward(out, lse, q, k, v, keyMask, window);
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
            Tensor keyMask, Tensor out, Tensor lse, int window) {
        Operands.requireOn(this, dq, dk, dv, dOut, q, k, v, keyMask, out, lse);
        Operands.requireF32(this, q, k, v);
        attention.backward(dq, dk, dv, dOut, q, k, v, keyMask, out, lse, window);
    }

    @Override
    public void attentionCachedForward(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable,
            Tensor querySeq, Tensor queryPos, int blockSize, int window) {
        Operands.requireOn(this, out, q, kCache, vCache, blockTable, querySeq, queryPos);
        Operands.requireF32(this, q, kCache, vCache);
        attention.cachedForward(out, q, kCache, vCache, blockTable, querySeq, queryPos, blockSize, window);
    }

    @Override
    public void scatterRows(Tensor dst, Tensor src, Tensor rows) {
        requireDtype(rows, DType.I32, "rows");
        if (dst.dtype() != src.dtype()) {
            throw new IllegalArgumentException("scatterRows needs equal dtypes: " + dst + " <- " + src);
        }
        int m = Math.toIntExact(rows.size());
        int width = m == 0 ? 0 : Math.toIntExact(src.size() / m);
        requireLength(src, (long) m * width);
        int dstRows = width == 0 ? 0 : Math.toIntExact(dst.size() / width);
        long rowBytes = (long) width * dst.dtype().byteSize();
        MemorySegment d = dst.memory(), s = src.memory(), r = rows.memory();
        for (int i = 0; i < m; i++) {
            int row = i32(r, i);
            if (row < 0 || row >= dstRows) {
                throw new IllegalArgumentException("scatter row " + row + " at position " + i + " is outside [0, " + dstRows + ")");
            }
            MemorySegment.copy(s, i * rowBytes, d, row * rowBytes, rowBytes);
        }
    }

    // ---------------------------------------------------------------- MLP

    @Override
    public void swigluForward(Tensor out, Tensor gate, Tensor up) {
        requireF32(out, gate, up);
        requireSameSize(out, gate, "gate");
        requireSameSize(out, up, "up");
        MemorySegment o = out.memory(), g = gate.memory(), u = up.memory();
        elementwise(out.size(), (start, end) -> {
            long i = start;
            for (long bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
                FloatVector x = load(g, i);
                store(x.mul(sigmoid(x)).mul(load(u, i)), o, i);
            }
            for (; i < end; i++) {
                float x = f(g, i);
                f(o, i, x * sigmoid(x) * f(u, i));
            }
        });
    }

    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up) {
        requireF32(dGate, dUp, dOut, gate, up);
        requireSameSize(dOut, gate, "gate");
        requireSameSize(dOut, up, "up");
        requireSameSize(dGate, gate, "gate");
        requireSameSize(dUp, up, "up");
        MemorySegment dg = dGate.memory(), du = dUp.memory(), dy = dOut.memory(), g = gate.memory(), u = up.memory();
        elementwise(dOut.size(), (start, end) -> {
            long i = start;
            for (long bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
                FloatVector x = load(g, i), s = sigmoid(x), grad = load(dy, i);
                store(grad.mul(x).mul(s), du, i);
                store(grad.mul(load(u, i)).mul(s).mul(x.mul(s.neg().add(1f)).add(1f)), dg, i);
            }
            for (; i < end; i++) {
                float x = f(g, i), s = sigmoid(x), grad = f(dy, i), upValue = f(u, i);
                f(du, i, grad * x * s);
                f(dg, i, grad * upValue * s * (1f + x * (1f - s)));
            }
        });
    }

    private static FloatVector sigmoid(FloatVector x) {
        return FloatVector.broadcast(F, 1f).div(Mem.exp(x.neg()).add(1f));
    }

    private static float sigmoid(float x) {
        return 1f / (1f + Mem.exp(-x));
    }

    // ---------------------------------------------------------------- sampling

    @Override
    public void argmaxRows(Tensor out, Tensor logits) {
        requireF32(logits);
        requireDtype(out, DType.I32, "out");
        int vocab = logits.dim(-1);
        int n = rows(logits, vocab, "logits");
        requireLength(out, n);
        MemorySegment x = logits.memory(), o = out.memory();
        pool.forRange(n, rowGrain(vocab), (start, end) -> {
            for (int row = start; row < end; row++) {
                o.setAtIndex(ValueLayout.JAVA_INT, row, Sampling.argmax(x, (long) row * vocab, vocab));
            }
        });
    }

    @Override
    public void sampleRows(Tensor out, Tensor logits, SamplingRule rule, Tensor streams, Tensor draws, Tensor history,
            Tensor historyLengths) {
        int historyLength = Operands.sampleRowsHistoryLength(this, out, logits, rule, streams, draws, history, historyLengths);
        int vocab = logits.dim(-1);
        int n = Math.toIntExact(out.size());
        MemorySegment x = logits.memory(), o = out.memory();
        MemorySegment st = rule.isGreedy() ? null : streams.memory(), dr = rule.isGreedy() ? null : draws.memory();
        MemorySegment h = historyLength > 0 ? history.memory() : null;
        MemorySegment lengths = rule.penalizesRepetition() ? historyLengths.memory() : null;
        // Each row is chosen alone, so any split of the rows gives the same ids; a chunk per thread
        // makes each thread's scratch once.
        pool.forRange(n, (n + pool.threads() - 1) / pool.threads(), (start, end) -> {
            Sampling sampling = new Sampling(rule, vocab);
            for (int row = start; row < end; row++) {
                long stream = st == null ? 0 : (i32(st, 2L * row) & 0xFFFFFFFFL) | (long) i32(st, 2L * row + 1) << 32;
                int draw = dr == null ? 0 : i32(dr, row);
                int length = lengths == null ? 0 : i32(lengths, row);
                if (length < 0 || length > historyLength) {
                    throw new IllegalArgumentException("history length " + length + " of row " + row + " is outside [0, "
                            + historyLength + "]");
                }
                o.setAtIndex(ValueLayout.JAVA_INT, row,
                        sampling.sample(x, (long) row * vocab, h, (long) row * historyLength, length, stream, draw));
            }
        });
    }

    // ---------------------------------------------------------------- log-probs and losses

    @Override
    public void logprobForward(Tensor logp, Tensor lse, Tensor logits, Tensor labels) {
        requireF32(logp, lse, logits);
        requireDtype(labels, DType.I32, "labels");
        int vocab = logits.dim(-1);
        int n = rows(logits, vocab, "logits");
        requireLength(logp, n);
        requireLength(lse, n);
        requireLength(labels, n);
        MemorySegment lp = logp.memory(), ls = lse.memory(), x = logits.memory(), lab = labels.memory();
        pool.forRange(n, rowGrain(vocab), (start, end) -> {
            for (int row = start; row < end; row++) {
                long base = (long) row * vocab;
                float logSumExp = logSumExp(x, base, vocab);
                f(ls, row, logSumExp);
                int label = checkedLabel(lab, row, vocab);
                f(lp, row, label == IGNORE_INDEX ? 0f : f(x, base + label) - logSumExp);
            }
        });
    }

    @Override
    public void logprobBackward(Tensor dLogits, Tensor dLogp, Tensor logits, Tensor labels, Tensor lse) {
        requireF32(dLogits, dLogp, logits, lse);
        requireDtype(labels, DType.I32, "labels");
        int vocab = logits.dim(-1);
        int n = rows(logits, vocab, "logits");
        requireSameSize(dLogits, logits, "logits");
        requireLength(dLogp, n);
        MemorySegment dx = dLogits.memory(), dlp = dLogp.memory(), x = logits.memory(), lab = labels.memory(),
                ls = lse.memory();
        pool.forRange(n, rowGrain(vocab), (start, end) -> {
            for (int row = start; row < end; row++) {
                long base = (long) row * vocab;
                int label = checkedLabel(lab, row, vocab);
                if (label == IGNORE_INDEX) {
                    dx.asSlice(base * Float.BYTES, (long) vocab * Float.BYTES).fill((byte) 0);
                    continue;
                }
                float g = f(dlp, row), logSumExp = f(ls, row);
                FloatVector minusG = FloatVector.broadcast(F, -g), lseV = FloatVector.broadcast(F, logSumExp);
                int j = 0;
                for (int bound = F.loopBound(vocab); j < bound; j += F.length()) {
                    store(Mem.exp(load(x, base + j).sub(lseV)).mul(minusG), dx, base + j);
                }
                for (; j < vocab; j++) {
                    f(dx, base + j, -g * Mem.exp(f(x, base + j) - logSumExp));
                }
                f(dx, base + label, f(dx, base + label) + g);
            }
        });
    }

    /** Vector max, then e^(x - max) summed in vector lanes per block of 256 and across blocks in double. */
    private static float logSumExp(MemorySegment x, long base, int n) {
        FloatVector maxV = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        int bound = F.loopBound(n);
        int j = 0;
        for (; j < bound; j += F.length()) {
            maxV = maxV.max(load(x, base + j));
        }
        float max = maxV.reduceLanes(jdk.incubator.vector.VectorOperators.MAX);
        for (; j < n; j++) {
            max = Math.max(max, f(x, base + j));
        }
        FloatVector maxB = FloatVector.broadcast(F, max);
        double sum = 0;
        j = 0;
        while (j < bound) {
            FloatVector acc = FloatVector.zero(F);
            for (int blockEnd = Math.min(bound, j + 256); j < blockEnd; j += F.length()) {
                acc = acc.add(Mem.exp(load(x, base + j).sub(maxB)));
            }
            sum += Mem.sumLanes(acc);
        }
        for (; j < n; j++) {
            sum += Mem.exp(f(x, base + j) - max);
        }
        return (float) (max + Math.log(sum));
    }

    private static int checkedLabel(MemorySegment labels, int row, int vocab) {
        int label = i32(labels, row);
        if (label != IGNORE_INDEX && (label < 0 || label >= vocab)) {
            throw new IllegalArgumentException("label " + label + " at position " + row
                    + " is neither in [0, " + vocab + ") nor the ignore index " + IGNORE_INDEX);
        }
        return label;
    }

    @Override
    public void rowSumForward(Tensor out, Tensor in) {
        requireF32(out, in);
        int cols = in.dim(-1);
        int rows = rows(in, cols, "in");
        requireLength(out, rows);
        MemorySegment o = out.memory(), x = in.memory();
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int c = 0; c < cols; c++) {
                s += f(x, (long) r * cols + c);
            }
            f(o, r, (float) s);
        }
    }

    @Override
    public void rowSumBackward(Tensor dIn, Tensor dOut) {
        requireF32(dIn, dOut);
        int cols = dIn.dim(-1);
        int rows = rows(dIn, cols, "dIn");
        requireLength(dOut, rows);
        MemorySegment dx = dIn.memory(), dy = dOut.memory();
        for (int r = 0; r < rows; r++) {
            float g = f(dy, r);
            for (int c = 0; c < cols; c++) {
                f(dx, (long) r * cols + c, g);
            }
        }
    }

    @Override
    public void spinLossForward(Tensor stats, Tensor policyReal, Tensor policyGenerated, Tensor opponentReal,
            Tensor opponentGenerated, float beta, SpinLossType type) {
        requireDtype(stats, DType.F64, "stats");
        requireLength(stats, SpinLossStats.COUNT);
        write(stats, SpinLoss.forward(read(policyReal), read(policyGenerated), read(opponentReal), read(opponentGenerated),
                beta, type).toArray());
    }

    @Override
    public void spinLossBackward(Tensor dPolicyReal, Tensor dPolicyGenerated, Tensor policyReal,
            Tensor policyGenerated, Tensor opponentReal, Tensor opponentGenerated, float beta, SpinLossType type,
            float lossScale) {
        float[] dLogits = SpinLoss.backward(read(policyReal), read(policyGenerated), read(opponentReal),
                read(opponentGenerated), beta, type, lossScale);
        float[] negated = new float[dLogits.length];
        for (int i = 0; i < dLogits.length; i++) {
            negated[i] = -dLogits[i];
        }
        write(dPolicyReal, dLogits);
        write(dPolicyGenerated, negated);
    }

    // ---------------------------------------------------------------- reductions

    @Override
    public void rmspropStep(Tensor param, Tensor grad, Tensor squareAvg, Tensor computeCopy, StepGradient gradient,
            float lr, float alpha, float eps, float weightDecay) {
        requireF32(param, grad, squareAvg);
        requireSameSize(param, grad, "grad");
        requireSameSize(param, squareAvg, "squareAvg");
        MemorySegment p = param.memory(), s = squareAvg.memory(), copy = computeCopy(computeCopy, param);
        OptimizerMath.Gradient g = gradient(grad, gradient);
        elementwise(param.size(), (start, end) -> {
            OptimizerMath.rmsprop(p, g, s, start, end, lr, alpha, eps, weightDecay);
            if (copy != null) {
                roundToBf16(copy, p, start, end);
            }
        });
    }

    @Override
    public void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, Tensor computeCopy,
            StepGradient gradient, float lr, float beta1, float beta2, float eps, float weightDecay, long step) {
        requireF32(param, grad, expAvg, expAvgSq);
        requireSameSize(param, grad, "grad");
        requireSameSize(param, expAvg, "expAvg");
        requireSameSize(param, expAvgSq, "expAvgSq");
        if (step < 1) {
            throw new IllegalArgumentException("AdamW step count starts at 1, got " + step);
        }
        MemorySegment p = param.memory(), m = expAvg.memory(), v = expAvgSq.memory(), copy = computeCopy(computeCopy, param);
        OptimizerMath.Gradient g = gradient(grad, gradient);
        elementwise(param.size(), (start, end) -> {
            OptimizerMath.adamw(p, g, m, v, start, end, lr, beta1, beta2, eps, weightDecay, step);
            if (copy != null) {
                roundToBf16(copy, p, start, end);
            }
        });
    }

    /** How an optimizer step reads {@code grad}: the scale read from its host memory once, for every element. */
    private OptimizerMath.Gradient gradient(Tensor grad, StepGradient gradient) {
        gradient.check(this);
        Tensor scale = gradient.scale();
        return new OptimizerMath.Gradient(grad.memory(), scale != null, scale == null ? 1f : f(scale.memory(), 0),
                gradient.zero());
    }

    /** The memory of an optimizer's optional BF16 compute copy of {@code param}, or null for none. */
    private MemorySegment computeCopy(Tensor computeCopy, Tensor param) {
        if (computeCopy == null) {
            return null;
        }
        Operands.requireComputeCopy(this, computeCopy, param);
        return computeCopy.memory();
    }

    @Override
    public void sum(Tensor out, Tensor in, double divisor) {
        requireDtype(out, DType.F64, "out");
        requireLength(out, 1);
        out.memory().set(ValueLayout.JAVA_DOUBLE, 0, reduce(in, false) / divisor);
    }

    @Override
    public void accumulateWeighted(Tensor sums, Tensor values, double weight) {
        requireDtype(sums, DType.F64, "sums");
        requireDtype(values, DType.F64, "values");
        requireSameSize(sums, values, "values");
        MemorySegment s = sums.memory(), v = values.memory();
        for (long i = 0; i < sums.size(); i++) {
            s.setAtIndex(ValueLayout.JAVA_DOUBLE, i,
                    s.getAtIndex(ValueLayout.JAVA_DOUBLE, i) + v.getAtIndex(ValueLayout.JAVA_DOUBLE, i) * weight);
        }
    }

    @Override
    public double sumOfSquares(Tensor in) {
        return reduce(in, true);
    }

    /** Chunk partials in double, summed in chunk order: the order is fixed by the chunk size alone. */
    private double reduce(Tensor in, boolean squares) {
        requireF32(in);
        MemorySegment x = in.memory();
        long n = in.size();
        int chunks = Math.toIntExact((n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK);
        double[] partial = new double[chunks];
        pool.forRange(chunks, 1, (start, end) -> {
            for (int c = start; c < end; c++) {
                long from = (long) c * ELEMENT_CHUNK, to = Math.min(n, from + ELEMENT_CHUNK);
                double s = 0;
                for (long i = from; i < to; i++) {
                    double v = f(x, i);
                    s += squares ? v * v : v;
                }
                partial[c] = s;
            }
        });
        double total = 0;
        for (double p : partial) {
            total += p;
        }
        return total;
    }

    // ---------------------------------------------------------------- helpers

    @FunctionalInterface
    private interface LongRange {
        void run(long start, long end);
    }

    private void elementwise(long n, LongRange body) {
        int chunks = Math.toIntExact((n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK);
        pool.forRange(chunks, 1, (start, end) -> {
            for (int c = start; c < end; c++) {
                long from = (long) c * ELEMENT_CHUNK;
                body.run(from, Math.min(n, from + ELEMENT_CHUNK));
            }
        });
    }

    private static int rowGrain(int rowLength) {
        return Math.max(1, ELEMENT_CHUNK / Math.max(1, rowLength));
    }

    private void requireF32(Tensor... tensors) {
        Operands.requireF32(this, tensors);
    }

    private void requireDtype(Tensor t, DType dtype, String name) {
        Operands.requireDtype(this, t, dtype, name);
    }
}
