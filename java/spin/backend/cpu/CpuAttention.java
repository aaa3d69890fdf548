package spin.backend.cpu;

import static spin.backend.cpu.Mem.f;
import static spin.backend.cpu.Mem.i32;

import java.lang.foreign.MemorySegment;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * Flash-style causal grouped-query attention on the CPU (semantics in
 * {@link spin.backend.Backend#attentionForward}). The forward streams keys in blocks with an online
 * softmax and keeps only the log-sum-exp per query, so memory stays O(T*D) for any T; the backward
 * recomputes probabilities from that log-sum-exp.
 */
final class CpuAttention {
    private static final int QUERY_BLOCK = 16;
    private static final int KEY_BLOCK = 64;

    private final CpuParallel pool;

    CpuAttention(CpuParallel pool) {
        this.pool = pool;
    }

    /** Shapes of one attention call, validated once. */
    private record Dims(int batch, int time, int heads, int kvHeads, int headDim, float scale) {
        static Dims of(Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
            if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) {
                throw new IllegalArgumentException("attention expects q [B,T,H,D], k and v [B,T,KVH,D]; got q "
                        + q + ", k " + k + ", v " + v);
            }
            int b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), kvh = k.dim(2);
            if (k.dim(0) != b || k.dim(1) != t || k.dim(3) != d || kvh == 0 || h % kvh != 0
                    || v.size() != k.size() || v.dim(2) != kvh) {
                throw new IllegalArgumentException("attention shapes disagree: q " + q + ", k " + k + ", v " + v
                        + " (need equal B, T, D and H a multiple of KVH)");
            }
            if (keyMask.dtype() != DType.I32 || keyMask.size() != (long) b * t) {
                throw new IllegalArgumentException("keyMask must be I32 [B,T] = [" + b + "," + t + "], got " + keyMask);
            }
            if (window < 0) {
                throw new IllegalArgumentException("sliding window must be >= 0 (0 = none), got " + window);
            }
            for (Tensor t4 : new Tensor[] {q, k, v}) {
                if (t4.dtype() != DType.F32) {
                    throw new IllegalArgumentException("attention operands must be F32, got " + t4);
                }
            }
            return new Dims(b, t, h, kvh, d, (float) (1.0 / Math.sqrt(d)));
        }

        long qRow(int b, int i, int h) {
            return (((long) b * time + i) * heads + h) * headDim;
        }

        long kvRow(int b, int j, int g) {
            return (((long) b * time + j) * kvHeads + g) * headDim;
        }

        long lseIndex(int b, int h, int i) {
            return ((long) b * heads + h) * time + i;
        }

        int firstKey(int i, int window) {
            return window > 0 ? Math.max(0, i - window + 1) : 0;
        }
    }

    void forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        Dims dims = Dims.of(q, k, v, keyMask, window);
        requireShape(out, q.size(), "out");
        requireShape(lse, (long) dims.batch * dims.heads * dims.time, "lse");
        int queryBlocks = (dims.time + QUERY_BLOCK - 1) / QUERY_BLOCK;
        int groupSize = dims.heads / dims.kvHeads;
        MemorySegment o = out.memory(), ls = lse.memory(), qm = q.memory(), km = k.memory(), vm = v.memory(),
                mask = keyMask.memory();
        pool.forRange(dims.batch * dims.heads * queryBlocks, 1, (start, end) -> {
            float[] scores = new float[KEY_BLOCK];
            MemorySegment acc = MemorySegment.ofArray(new float[dims.headDim]);
            for (int item = start; item < end; item++) {
                int b = item / (dims.heads * queryBlocks);
                int h = (item / queryBlocks) % dims.heads;
                int firstQuery = (item % queryBlocks) * QUERY_BLOCK;
                int g = h / groupSize;
                for (int i = firstQuery; i < Math.min(dims.time, firstQuery + QUERY_BLOCK); i++) {
                    long qRow = dims.qRow(b, i, h);
                    acc.fill((byte) 0);
                    float max = Float.NEGATIVE_INFINITY, denominator = 0f;
                    for (int j0 = dims.firstKey(i, window); j0 <= i; j0 += KEY_BLOCK) {
                        int j1 = Math.min(i + 1, j0 + KEY_BLOCK);
                        float blockMax = Float.NEGATIVE_INFINITY;
                        for (int j = j0; j < j1; j++) {
                            float s = i32(mask, (long) b * dims.time + j) == 0
                                    ? Float.NEGATIVE_INFINITY
                                    : Mem.dot(qm, qRow, km, dims.kvRow(b, j, g), dims.headDim) * dims.scale;
                            scores[j - j0] = s;
                            blockMax = Math.max(blockMax, s);
                        }
                        if (blockMax == Float.NEGATIVE_INFINITY) {
                            continue;
                        }
                        float newMax = Math.max(max, blockMax);
                        if (newMax != max) {
                            float correction = Mem.exp(max - newMax);
                            denominator *= correction;
                            Mem.scale(correction, acc, 0, dims.headDim);
                            max = newMax;
                        }
                        Mem.expShifted(scores, j1 - j0, max);
                        for (int j = j0; j < j1; j++) {
                            float p = scores[j - j0];
                            if (p == 0f) {
                                continue;
                            }
                            denominator += p;
                            Mem.axpy(p, vm, dims.kvRow(b, j, g), acc, 0, dims.headDim);
                        }
                    }
                    long lseAt = dims.lseIndex(b, h, i);
                    if (denominator == 0f) {
                        o.asSlice(qRow * Float.BYTES, (long) dims.headDim * Float.BYTES).fill((byte) 0);
                        f(ls, lseAt, Float.NEGATIVE_INFINITY);
                        continue;
                    }
                    float inv = 1f / denominator;
                    for (int c = 0; c < dims.headDim; c++) {
                        f(o, qRow + c, f(acc, c) * inv);
                    }
                    f(ls, lseAt, max + (float) Math.log(denominator));
                }
            }
        });
    }

    /**
     * One task per (batch, kv head): it owns dk and dv of that head and dq of the query heads that
     * share it, so no two tasks write the same element and the summation order is fixed.
     */
    void backward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor keyMask,
            Tensor out, Tensor lse, int window) {
        Dims dims = Dims.of(q, k, v, keyMask, window);
        requireShape(dq, q.size(), "dq");
        requireShape(dOut, q.size(), "dOut");
        requireShape(out, q.size(), "out");
        requireShape(dk, k.size(), "dk");
        requireShape(dv, v.size(), "dv");
        requireShape(lse, (long) dims.batch * dims.heads * dims.time, "lse");
        int groupSize = dims.heads / dims.kvHeads;
        int d = dims.headDim;
        MemorySegment dqm = dq.memory(), dkm = dk.memory(), dvm = dv.memory(), dom = dOut.memory(), qm = q.memory(),
                km = k.memory(), vm = v.memory(), mask = keyMask.memory(), om = out.memory(), ls = lse.memory();
        pool.forRange(dims.batch * dims.kvHeads, 1, (start, end) -> {
            float[] probabilities = new float[KEY_BLOCK];
            for (int item = start; item < end; item++) {
                int b = item / dims.kvHeads, g = item % dims.kvHeads;
                for (int j = 0; j < dims.time; j++) {
                    dkm.asSlice(dims.kvRow(b, j, g) * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                    dvm.asSlice(dims.kvRow(b, j, g) * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                }
                for (int h = g * groupSize; h < (g + 1) * groupSize; h++) {
                    for (int i = 0; i < dims.time; i++) {
                        long qRow = dims.qRow(b, i, h);
                        dqm.asSlice(qRow * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                        float logSumExp = f(ls, dims.lseIndex(b, h, i));
                        if (logSumExp == Float.NEGATIVE_INFINITY) {
                            continue;
                        }
                        float rowDot = Mem.dot(dom, qRow, om, qRow, d);
                        for (int j0 = dims.firstKey(i, window); j0 <= i; j0 += KEY_BLOCK) {
                            int j1 = Math.min(i + 1, j0 + KEY_BLOCK);
                            for (int j = j0; j < j1; j++) {
                                probabilities[j - j0] = i32(mask, (long) b * dims.time + j) == 0
                                        ? Float.NEGATIVE_INFINITY
                                        : Mem.dot(qm, qRow, km, dims.kvRow(b, j, g), d) * dims.scale;
                            }
                            Mem.expShifted(probabilities, j1 - j0, logSumExp);
                            for (int j = j0; j < j1; j++) {
                                float p = probabilities[j - j0];
                                if (p == 0f) {
                                    continue;
                                }
                                long kvRow = dims.kvRow(b, j, g);
                                Mem.axpy(p, dom, qRow, dvm, kvRow, d);
                                float dScore = p * (Mem.dot(dom, qRow, vm, kvRow, d) - rowDot) * dims.scale;
                                Mem.axpy(dScore, km, kvRow, dqm, qRow, d);
                                Mem.axpy(dScore, qm, qRow, dkm, kvRow, d);
                            }
                        }
                    }
                }
            }
        });
    }

    void cachedForward(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable, Tensor querySeq,
            Tensor queryPos, int blockSize, int window) {
        if (q.rank() != 3 || kCache.rank() != 3) {
            throw new IllegalArgumentException("cached attention expects q [M,H,D] and caches [R,KVH,D], got " + q + ", " + kCache);
        }
        int m = q.dim(0), heads = q.dim(1), d = q.dim(2), kvHeads = kCache.dim(1), cacheRows = kCache.dim(0);
        if (kCache.dim(2) != d || vCache.size() != kCache.size() || heads % kvHeads != 0) {
            throw new IllegalArgumentException("cached attention shapes disagree: q " + q + ", k " + kCache + ", v " + vCache);
        }
        requireShape(out, q.size(), "out");
        int maxBlocks = blockTable.dim(1);
        int groupSize = heads / kvHeads;
        float scale = (float) (1.0 / Math.sqrt(d));
        MemorySegment o = out.memory(), qm = q.memory(), km = kCache.memory(), vm = vCache.memory(),
                table = blockTable.memory(), seqs = querySeq.memory(), positions = queryPos.memory();
        // Items are independent, so chunks may hold many of them: fewer scratch arrays and claims.
        int items = m * heads;
        pool.forRange(items, Math.max(1, Math.min(64, items / (8 * pool.threads()))), (start, end) -> {
            float[] scores = new float[KEY_BLOCK];
            long[] keyRows = new long[KEY_BLOCK];
            MemorySegment acc = MemorySegment.ofArray(new float[d]);
            for (int item = start; item < end; item++) {
                int token = item / heads, h = item % heads, g = h / groupSize;
                int seq = i32(seqs, token), pos = i32(positions, token);
                long qRow = ((long) token * heads + h) * d;
                acc.fill((byte) 0);
                float max = Float.NEGATIVE_INFINITY, denominator = 0f;
                for (int p0 = window > 0 ? Math.max(0, pos - window + 1) : 0; p0 <= pos; p0 += KEY_BLOCK) {
                    int p1 = Math.min(pos + 1, p0 + KEY_BLOCK);
                    cacheRows(keyRows, table, seq, p0, p1, blockSize, maxBlocks, cacheRows);
                    float blockMax = Float.NEGATIVE_INFINITY;
                    for (int p = p0; p < p1; p++) {
                        float s = Mem.dot(qm, qRow, km, (keyRows[p - p0] * kvHeads + g) * d, d) * scale;
                        scores[p - p0] = s;
                        blockMax = Math.max(blockMax, s);
                    }
                    float newMax = Math.max(max, blockMax);
                    if (newMax != max) {
                        float correction = Mem.exp(max - newMax);
                        denominator *= correction;
                        Mem.scale(correction, acc, 0, d);
                        max = newMax;
                    }
                    Mem.expShifted(scores, p1 - p0, max);
                    for (int p = p0; p < p1; p++) {
                        float weight = scores[p - p0];
                        denominator += weight;
                        Mem.axpy(weight, vm, (keyRows[p - p0] * kvHeads + g) * d, acc, 0, d);
                    }
                }
                float inv = 1f / denominator;
                for (int c = 0; c < d; c++) {
                    f(o, qRow + c, f(acc, c) * inv);
                }
            }
        });
    }

    /**
     * rows[p - p0] = cache row of position p of sequence {@code seq}, for p in [p0, p1): one table
     * lookup (and its checks) per block rather than per position.
     */
    private static void cacheRows(long[] rows, MemorySegment table, int seq, int p0, int p1, int blockSize, int maxBlocks,
            int cacheRows) {
        for (int p = p0; p < p1; ) {
            long first = cacheRow(table, seq, p, blockSize, maxBlocks, cacheRows);
            int run = Math.min(p1 - p, blockSize - p % blockSize);
            for (int i = 0; i < run; i++) {
                rows[p - p0 + i] = first + i;
            }
            p += run;
        }
    }

    private static long cacheRow(MemorySegment table, int seq, int position, int blockSize, int maxBlocks, int cacheRows) {
        int blockIndex = position / blockSize;
        if (blockIndex >= maxBlocks) {
            throw new IllegalArgumentException("position " + position + " needs block " + blockIndex
                    + " but the block table has " + maxBlocks + " columns");
        }
        long row = (long) i32(table, (long) seq * maxBlocks + blockIndex) * blockSize + position % blockSize;
        if (row < 0 || row >= cacheRows) {
            throw new IllegalArgumentException("cache row " + row + " for position " + position + " of sequence " + seq
                    + " is outside the cache of " + cacheRows + " rows");
        }
        return row;
    }

    private static void requireShape(Tensor t, long elements, String name) {
        if (t.dtype() != DType.F32 || t.size() != elements) {
            throw new IllegalArgumentException(name + " must be F32 with " + elements + " elements, got " + t);
        }
    }
}
