package spin.dist;

import spin.backend.Backend;
import spin.backend.Tensor;

/**
 * Collectives among the {@link #worldSize()} ranks of one training job, each rank bound to one
 * {@link Backend} and calling from its own thread.
 *
 * <h2>Calling rule</h2>
 * Every rank calls the same collectives in the same order with agreeing arguments (the same
 * dtype, sizes and root). A collective's results are visible to this rank's later work once it
 * returns; whether the host waits for the other ranks in the call depends on the implementation
 * (in-process: it does; NCCL on a GPU: the call only queues the work). Where an implementation
 * detects disagreeing calls ({@link InProcessCommunicator} does), ranks whose calls disagree all
 * get an {@link IllegalArgumentException} naming each rank's arguments, and the communicator stays
 * usable; NCCL does not detect them ({@link NcclCommunicator}). Tensors are this rank's, on its
 * {@link #backend()}; a tensor's shape does not matter, only its element count.
 *
 * <h2>Dtypes</h2>
 * {@link #allGather} and {@link #broadcast} move F32 or BF16 (compute weights are gathered in
 * BF16), bit for bit. {@link #reduceScatter} sums F32; {@link #allReduce} sums F32, or F64 (the
 * device-side statistics of a step: metric sums, sums of squares for the gradient norm).
 *
 * <h2>Determinism</h2>
 * A sum is accumulated in fp32 (F64: in double) in rank order: {@code ((x0 + x1) + x2) + ... + x(N-1)}, starting
 * from rank 0's value (not from zero, so a sum of one rank is that rank's value, signed zeros
 * included). Every rank gets the same bits, and the same inputs give the same bits run to run.
 * (NCCL's ring sums in another order; {@link NcclCommunicator} documents its own.)
 *
 * <h2>Ordering</h2>
 * A collective is ordered after the work already queued on this rank's backend that produces its
 * inputs, and work queued afterwards sees its outputs.
 *
 * <h2>Errors</h2>
 * A rank that fails, inside a collective or outside one (then its code calls {@link #abort}),
 * stops the group: every rank's pending and later collectives throw a
 * {@link CommunicatorException} naming the failed rank (-1 where the implementation cannot tell:
 * NCCL ranks of another process), with its error as the cause. A collective that waits longer
 * than the communicator's timeout throws one naming the ranks that never arrived, and stops the
 * group likewise (where the implementation has a timeout of its own; {@link NcclCommunicator}
 * leaves it to the caller's watchdog, which calls {@link #abort}). Arguments wrong on this rank
 * alone (wrong dtype, sizes that do not fit, a tensor of another backend) throw
 * {@link IllegalArgumentException} here and stop the group, since the other ranks would otherwise
 * wait for a call that never comes.
 */
public interface Communicator extends AutoCloseable {

    /** This rank: 0 to {@code worldSize() - 1}. */
    int rank();

    /** Number of ranks. */
    int worldSize();

    /** The backend this rank's tensors live on. */
    Backend backend();

    /**
     * {@code out[r*n .. (r+1)*n) = in} of rank r, for every rank r, where {@code n = in.size()}
     * and {@code out.size() == worldSize() * n}. F32 or BF16, the same for {@code in} and
     * {@code out}. {@code in} may be {@code out}'s own slice {@code out.view(rank()*n, n)} (the
     * in-place form); no other overlap.
     */
    void allGather(Tensor out, Tensor in);

    /**
     * {@code out = in[rank()*n .. (rank()+1)*n)} summed over ranks in rank order, where
     * {@code n = out.size()} and {@code in.size() == worldSize() * n}. F32. {@code out} may be
     * {@code in}'s own slice {@code in.view(rank()*n, n)} (the in-place form); no other overlap.
     */
    void reduceScatter(Tensor out, Tensor in);

    /** {@code inOut} = the rank-order sum of every rank's {@code inOut}, same size on every rank. F32 or F64. */
    void allReduce(Tensor inOut);

    /** {@code inOut} = rank {@code root}'s {@code inOut}, same size on every rank. F32 or BF16. */
    void broadcast(Tensor inOut, int root);

    /** Returns once every rank has called it. */
    void barrier();

    /**
     * Stops the group because this rank failed with {@code cause}: every rank's pending and later
     * collectives, this rank's included, throw a {@link CommunicatorException} naming this rank with
     * {@code cause}. Only the first failure of a group is kept; aborting again does nothing.
     */
    void abort(Throwable cause);

    /**
     * Releases this rank's resources (an NCCL communicator; nothing in-process) after its last
     * collective; later collectives of this rank are an {@link IllegalStateException} where there
     * was something to release. Closing twice does nothing. The backend stays open.
     */
    @Override
    default void close() {}
}
