package spin.backend;

import java.util.Arrays;

/**
 * The operand checks every backend makes before an op touches memory, so that a wrong shape, dtype
 * or device is an {@link IllegalArgumentException} naming the tensor, never a crash or a silent
 * read of another device's memory.
 */
public final class Operands {
    private Operands() {}

    /** Each tensor belongs to {@code backend}: a tensor of another device is named with both devices. */
    public static void requireOn(Backend backend, Tensor... tensors) {
        for (Tensor t : tensors) {
            if (t != null && t.backend() != backend) {
                throw new IllegalArgumentException("tensor " + t + " belongs to " + t.backend().name()
                        + ", not to " + backend.name() + " that was asked to use it; copy it through the host (read, fromHost)");
            }
        }
    }

    /** Each tensor belongs to {@code backend} and is F32. */
    public static void requireF32(Backend backend, Tensor... tensors) {
        for (Tensor t : tensors) {
            requireDtype(backend, t, DType.F32, "operand");
        }
    }

    /**
     * The compute dtype of an op's activation operands: each belongs to {@code backend} and is F32
     * or BF16, all alike ({@code null}s, the optional operands, are skipped).
     */
    public static DType requireActivations(Backend backend, Tensor... tensors) {
        DType dtype = null;
        Tensor first = null;
        for (Tensor t : tensors) {
            if (t == null) {
                continue;
            }
            requireOn(backend, t);
            if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) {
                throw new IllegalArgumentException("activation " + t + " must be F32 or BF16");
            }
            if (dtype == null) {
                dtype = t.dtype();
                first = t;
            } else if (t.dtype() != dtype) {
                throw new IllegalArgumentException("activation " + t + " must have the dtype of " + first
                        + ": an op's activations and compute weights share one compute dtype");
            }
        }
        return dtype == null ? DType.F32 : dtype;
    }

    public static void requireDtype(Backend backend, Tensor t, DType dtype, String name) {
        requireOn(backend, t);
        if (t.dtype() != dtype) {
            throw new IllegalArgumentException(name + " must be " + dtype + ", got " + t);
        }
    }

    public static void requireLength(Tensor t, long elements) {
        if (t.size() != elements) {
            throw new IllegalArgumentException(t + " must hold " + elements + " elements");
        }
    }

    public static void requireSameSize(Tensor t, Tensor like, String likeName) {
        if (t.size() != like.size()) {
            throw new IllegalArgumentException(t + " must have as many elements as " + likeName + " " + like);
        }
    }

    /**
     * Refuses {@code t} sharing any byte with one of {@code others}: by address range, so it holds for
     * device memory (never dereferenced here) as for host memory.
     */
    public static void requireDisjoint(Tensor t, String name, Tensor... others) {
        long start = t.memory().address(), end = start + t.memory().byteSize();
        for (Tensor other : others) {
            long otherStart = other.memory().address(), otherEnd = otherStart + other.memory().byteSize();
            if (start < otherEnd && otherStart < end) {
                throw new IllegalArgumentException(name + " " + t + " may not share memory with " + other);
            }
        }
    }

    /** An optimizer step's compute copy: BF16, of param's size, on this backend. */
    public static void requireComputeCopy(Backend backend, Tensor computeCopy, Tensor param) {
        requireDtype(backend, computeCopy, DType.BF16, "computeCopy");
        requireSameSize(computeCopy, param, "param");
    }

    /** The number of rows of length {@code rowLength} that {@code t} holds. */
    public static int rows(Tensor t, int rowLength, String name) {
        if (rowLength == 0 || t.size() % rowLength != 0) {
            throw new IllegalArgumentException(name + " " + t + " is not a whole number of rows of " + rowLength);
        }
        return Math.toIntExact(t.size() / rowLength);
    }

    /**
     * Checks the operands of {@link Backend#sampleRows} and returns the length L of its history rows
     * (0 where the rule has no repetition penalty, which reads no history).
     */
    public static int sampleRowsHistoryLength(Backend backend, Tensor out, Tensor logits, SamplingRule rule, Tensor streams,
            Tensor draws, Tensor history, Tensor historyLengths) {
        requireF32(backend, logits);
        requireDtype(backend, out, DType.I32, "out");
        int s = rows(logits, logits.dim(-1), "logits");
        requireLength(out, s);
        if (!rule.isGreedy()) {
            requireDtype(backend, present(streams, "streams", "sampling"), DType.I32, "streams");
            requireLength(streams, 2L * s);
            requireDtype(backend, present(draws, "draws", "sampling"), DType.I32, "draws");
            requireLength(draws, s);
        }
        if (!rule.penalizesRepetition()) {
            return 0;
        }
        requireDtype(backend, present(history, "history", "a repetition penalty"), DType.I32, "history");
        requireDtype(backend, present(historyLengths, "historyLengths", "a repetition penalty"), DType.I32, "historyLengths");
        requireLength(historyLengths, s);
        if (history.rank() != 2 || history.dim(0) != s) {
            throw new IllegalArgumentException("history must be [" + s + ", L], one row per row of logits, got " + history);
        }
        return history.dim(1);
    }

    private static Tensor present(Tensor t, String name, String needs) {
        if (t == null) {
            throw new IllegalArgumentException(name + " must be given for " + needs);
        }
        return t;
    }

    /** [B,T,H,D] of a rank-4 tensor with an even head dim, as RoPE takes it. */
    public static int[] ropeShape(Tensor in) {
        if (in.rank() != 4) {
            throw new IllegalArgumentException("rope expects [B,T,H,D], got " + in);
        }
        if (in.dim(3) % 2 != 0) {
            throw new IllegalArgumentException("rope needs an even head dim, got " + in.dim(3));
        }
        return in.shape();
    }

    /**
     * Checks the operands of {@link Backend#qkvRopeForward} / {@link Backend#qkvRopeBackward}: q
     * [B,T,H,D], k and v [B,T,KVH,D], the stacked rows of B*T*(H + 2 KVH)*D elements, positions of
     * B*T, none overlapping another; returns {B, T, H, KVH, D}.
     */
    public static int[] qkvShape(Tensor q, Tensor k, Tensor v, Tensor stacked, Tensor positions) {
        int[] qShape = ropeShape(q), kShape = ropeShape(k);
        int b = qShape[0], t = qShape[1], h = qShape[2], d = qShape[3], kvh = kShape[2];
        if (kShape[0] != b || kShape[1] != t || kShape[3] != d) {
            throw new IllegalArgumentException("q " + q + " and k " + k + " need the same B, T and D");
        }
        if (!Arrays.equals(v.shape(), kShape)) {
            throw new IllegalArgumentException("v " + v + " needs k's shape " + k);
        }
        requireLength(stacked, (long) b * t * (h + 2L * kvh) * d);
        requireLength(positions, (long) b * t);
        requireDisjoint(stacked, "the stacked q/k/v rows", q, k, v);
        requireDisjoint(q, "q", k, v);
        requireDisjoint(k, "k", v);
        return new int[] {b, t, h, kvh, d};
    }
}
