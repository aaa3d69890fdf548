package spin.dist;

import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * The checks every {@link Communicator} makes of one rank's arguments before a collective (the
 * interface's dtype, size, overlap and ownership rules), so that each implementation refuses the
 * same calls with the same message.
 */
final class CollectiveArguments {
    private final Backend backend;
    private final int rank;
    private final int worldSize;

    CollectiveArguments(Backend backend, int rank, int worldSize) {
        this.backend = backend;
        this.rank = rank;
        this.worldSize = worldSize;
    }

    void allGather(Tensor out, Tensor in) {
        requireMovable("allGather", in);
        requireOwn(out);
        if (out.dtype() != in.dtype()) {
            throw new IllegalArgumentException("allGather needs one dtype, not " + out + " and " + in);
        }
        requireSize("allGather out", out, (long) worldSize * in.size());
        requireDisjointOrOwnSlice("allGather", out, in);
    }

    void reduceScatter(Tensor out, Tensor in) {
        requireF32("reduceScatter", out);
        requireF32("reduceScatter", in);
        requireSize("reduceScatter in", in, (long) worldSize * out.size());
        requireDisjointOrOwnSlice("reduceScatter", in, out);
    }

    void allReduce(Tensor inOut) {
        requireOwn(inOut);
        if (inOut.dtype() != DType.F32 && inOut.dtype() != DType.F64) {
            throw new IllegalArgumentException("allReduce sums F32 or F64, not " + inOut);
        }
    }

    void broadcast(Tensor inOut, int root) {
        requireMovable("broadcast", inOut);
        if (root < 0 || root >= worldSize) {
            throw new IllegalArgumentException("broadcast root " + root + " is not a rank of " + worldSize);
        }
    }

    private void requireOwn(Tensor t) {
        if (t.backend() != backend) {
            throw new IllegalArgumentException(t + " is not on rank " + rank + "'s backend " + backend.name());
        }
    }

    private void requireF32(String operation, Tensor t) {
        requireOwn(t);
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(operation + " sums F32 only, not " + t);
        }
    }

    private void requireMovable(String operation, Tensor t) {
        requireOwn(t);
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) {
            throw new IllegalArgumentException(operation + " moves F32 or BF16, not " + t);
        }
    }

    private static void requireSize(String what, Tensor t, long expected) {
        if (t.size() != expected) {
            throw new IllegalArgumentException(what + " must hold " + expected + " elements, not " + t);
        }
    }

    /** {@code part} may be {@code whole}'s slice at this rank (NCCL's in-place form) or apart from it. */
    private void requireDisjointOrOwnSlice(String operation, Tensor whole, Tensor part) {
        long wholeStart = whole.memory().address();
        long partStart = part.memory().address();
        boolean apart = partStart + part.byteSize() <= wholeStart || wholeStart + whole.byteSize() <= partStart;
        boolean ownSlice = partStart == wholeStart + rank * part.byteSize();
        if (!apart && !ownSlice) {
            throw new IllegalArgumentException(operation + ": " + part + " overlaps " + whole
                    + " other than as rank " + rank + "'s slice");
        }
    }
}
