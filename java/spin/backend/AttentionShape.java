package spin.backend;

/**
 * The dimensions of an attention call, checked once for every backend: q [B,T,H,D], k and v
 * [B,T,KVH,D] with H a multiple of KVH, an I32 key mask [B,T], window >= 0. The dtypes of the
 * floating operands are each backend's to check (the compute dtypes it takes).
 */
public record AttentionShape(int batch, int time, int heads, int kvHeads, int headDim) {

    public static AttentionShape of(Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
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
        requireWindow(window);
        return new AttentionShape(b, t, h, kvh, d);
    }

    /** Decoding over a paged cache: q [M,H,D] (batch = M tokens, time 1), caches [R,KVH,D]. */
    public static AttentionShape cached(Tensor q, Tensor kCache, Tensor vCache, int window) {
        if (q.rank() != 3 || kCache.rank() != 3) {
            throw new IllegalArgumentException("cached attention expects q [M,H,D] and caches [R,KVH,D], got " + q + ", " + kCache);
        }
        int m = q.dim(0), heads = q.dim(1), d = q.dim(2), kvHeads = kCache.dim(1);
        if (kCache.dim(2) != d || vCache.size() != kCache.size() || kvHeads == 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("cached attention shapes disagree: q " + q + ", k " + kCache + ", v " + vCache);
        }
        requireWindow(window);
        return new AttentionShape(m, 1, heads, kvHeads, d);
    }

    private static void requireWindow(int window) {
        if (window < 0) {
            throw new IllegalArgumentException("sliding window must be >= 0 (0 = none), got " + window);
        }
    }

    /** Elements of lse [B,H,T]. */
    public long lseSize() {
        return (long) batch * heads * time;
    }
}
