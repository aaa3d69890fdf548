package spin.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;
import spin.backend.DType;
import spin.backend.FrozenWeights;
import spin.backend.Tensor;

/**
 * The CPU backend's side of {@link spin.backend.Backend#freezeWeights}: packed copies
 * ({@link Gemm.PackedB}) of frozen weights, made on the first product that uses the weight and
 * kept until the last freeze covering the weight closes. Products of any number of rows then use
 * the copy, so a row's result does not depend on how many rows share the product.
 *
 * <p>Staleness: a packed copy is only ever served while a freeze of that very {@link Tensor}
 * object is open (lookup by identity, so a new tensor at a reused address never meets an old
 * copy), and it is dropped when the last such freeze closes; the next freeze packs afresh. A
 * weight changed while frozen is a caller error, caught when its last freeze closes: a
 * fingerprint of the weight's bits taken at packing is compared with one of its current bits
 * (a single changed element always changes it), and close throws.
 *
 * <p>Memory: a packed copy is as large as the weight (columns rounded up to 32), on the Java heap.
 * A weight whose copy would take more than half of the heap still free stays unpacked (its
 * products pack it per call, as without a freeze).
 */
final class PackedWeights {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final int FINGERPRINT_MULTIPLIER = 0x9E3779B1; // odd

    private final CpuParallel pool;
    /** Frozen weights, by identity; guarded by {@code this}. */
    private final Map<Tensor, Entry> entries = new IdentityHashMap<>();
    /** entries.size(), readable without the lock. */
    private volatile int frozenCount;

    private static final class Entry {
        final int outFeatures, inFeatures;
        int freezes;
        Gemm.PackedB packed;
        long fingerprint;
        boolean tooLarge;

        Entry(int outFeatures, int inFeatures) {
            this.outFeatures = outFeatures;
            this.inFeatures = inFeatures;
        }
    }

    PackedWeights(CpuParallel pool) {
        this.pool = pool;
    }

    FrozenWeights freeze(List<Tensor> weights) {
        List<Tensor> held = List.copyOf(weights);
        for (Tensor w : held) {
            if (w.dtype() != DType.F32 || w.rank() != 2) {
                throw new IllegalArgumentException("only F32 matrices can be frozen, got " + w);
            }
        }
        synchronized (this) {
            for (Tensor w : held) {
                entries.computeIfAbsent(w, t -> new Entry(t.dim(0), t.dim(1))).freezes++;
            }
            frozenCount = entries.size();
        }
        return new FrozenWeights() {
            private boolean closed;

            @Override
            public long prepare() {
                long bytes = 0;
                Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
                for (Tensor w : held) {
                    Gemm.PackedB p = seen.add(w) ? packed(w) : null;
                    bytes += p == null ? 0 : p.bytes();
                }
                return bytes;
            }

            @Override
            public void close() {
                synchronized (PackedWeights.this) {
                    if (closed) {
                        return;
                    }
                    closed = true;
                }
                release(held);
            }
        };
    }

    /** Bytes of packed copies currently held. */
    synchronized long bytes() {
        long bytes = 0;
        for (Entry e : entries.values()) {
            bytes += e.packed == null ? 0 : e.packed.bytes();
        }
        return bytes;
    }

    /**
     * The packed copy of {@code weight} as op(B) = weight^T for matmulForward, packing it now if
     * this is its first use; null when the weight is not frozen or its copy would not fit the heap.
     */
    Gemm.PackedB packed(Tensor weight) {
        if (frozenCount == 0) {
            return null;
        }
        synchronized (this) {
            Entry e = entries.get(weight);
            if (e == null || e.tooLarge) {
                return null;
            }
            if (e.packed == null) {
                long bytes = Gemm.packedFloats(e.outFeatures, e.inFeatures) * Float.BYTES;
                Runtime rt = Runtime.getRuntime();
                long free = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
                if (bytes > Integer.MAX_VALUE * (long) Float.BYTES || bytes > free / 2) {
                    e.tooLarge = true;
                    return null;
                }
                MemorySegment w = weight.memory();
                e.fingerprint = fingerprint(w);
                e.packed = Gemm.pack(pool, true, e.outFeatures, e.inFeatures, w, 0, e.inFeatures);
            }
            return e.packed;
        }
    }

    private void release(List<Tensor> held) {
        List<Tensor> dropped = new ArrayList<>();
        List<Long> fingerprints = new ArrayList<>();
        synchronized (this) {
            for (Tensor w : held) {
                Entry e = entries.get(w);
                if (--e.freezes == 0) {
                    entries.remove(w);
                    if (e.packed != null) {
                        dropped.add(w);
                        fingerprints.add(e.fingerprint);
                    }
                }
            }
            frozenCount = entries.size();
        }
        List<Tensor> changed = new ArrayList<>();
        for (int i = 0; i < dropped.size(); i++) {
            if (fingerprint(dropped.get(i).memory()) != fingerprints.get(i)) {
                changed.add(dropped.get(i));
            }
        }
        if (!changed.isEmpty()) {
            throw new IllegalStateException(changed.size() + " frozen weight(s) changed while frozen (first: " + changed.get(0)
                    + "); matrix products computed meanwhile used their old values");
        }
    }

    /**
     * A 64-bit hash of the raw bits of a float matrix: per vector lane, h = h * odd + bits over the
     * lane's elements; then the lanes and the scalar tail are folded likewise in 64 bits. Changing
     * any one element changes it.
     */
    static long fingerprint(MemorySegment s) {
        long n = s.byteSize() / Integer.BYTES;
        IntVector h = IntVector.zero(I);
        long i = 0;
        for (long bound = n - n % I.length(); i < bound; i += I.length()) {
            h = h.mul(FINGERPRINT_MULTIPLIER).add(IntVector.fromMemorySegment(I, s, i * Integer.BYTES, ByteOrder.nativeOrder()));
        }
        long total = 0;
        for (int lane = 0; lane < I.length(); lane++) {
            total = total * FINGERPRINT_MULTIPLIER + Integer.toUnsignedLong(h.lane(lane));
        }
        for (; i < n; i++) {
            total = total * FINGERPRINT_MULTIPLIER + Integer.toUnsignedLong(s.getAtIndex(ValueLayout.JAVA_INT, i));
        }
        return total;
    }
}
