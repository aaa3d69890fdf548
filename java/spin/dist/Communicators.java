package spin.dist;

import java.time.Duration;
import java.util.List;
import spin.backend.Backend;
import spin.backend.cuda.CudaBackend;

/**
 * The one factory of communicators for ranks that are threads of this JVM: the distributed code
 * asks for a group here and never names an implementation.
 */
public final class Communicators {
    /**
     * How long an in-process rank waits for the others before the group stops: long enough for a
     * slow first step (PyTorch's default for its NCCL watchdog is the same ten minutes).
     */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

    private Communicators() {}

    /** {@link #inProcess(List, Duration)} with {@link #DEFAULT_TIMEOUT}. */
    public static List<Communicator> inProcess(List<? extends Backend> backends) {
        return inProcess(backends, DEFAULT_TIMEOUT);
    }

    /**
     * One communicator per backend, rank r on {@code backends.get(r)}, all in one group of
     * {@code backends.size()} ranks: {@link NcclCommunicator}s under a fresh unique id when every
     * backend is a CUDA device (real or emulated, not mixed; each rank on a device of its own, as
     * NCCL needs), else {@link InProcessCommunicator}s whose collectives give up after
     * {@code timeout} (NCCL has no timeout of its own; see {@link NcclCommunicator}). Each rank's
     * communicator is then used from that rank's own thread; close them after the last collective.
     */
    public static List<Communicator> inProcess(List<? extends Backend> backends, Duration timeout) {
        if (backends.isEmpty()) {
            throw new IllegalArgumentException("a group needs at least one rank");
        }
        if (backends.stream().allMatch(b -> b instanceof CudaBackend)) {
            byte[] id = NcclCommunicator.newUniqueId(backends.getFirst());
            return List.copyOf(NcclCommunicator.create(id, backends.size(), 0, backends));
        }
        return List.copyOf(InProcessCommunicator.create(backends, timeout));
    }
}
