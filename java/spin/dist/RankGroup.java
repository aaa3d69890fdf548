package spin.dist;

import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DeviceSpec;
import spin.backend.Devices;
import spin.backend.Precision;

/**
 * This process's ranks of a {@link World}, ready for collectives: a backend per local device and a
 * communicator per backend. In one process, {@link Communicators#inProcess}; over several, NCCL
 * under the unique id rank 0's process makes and {@link Rendezvous#exchange} hands to the others
 * (only CUDA devices can talk across processes). Closing closes the communicators, then the
 * backends.
 */
public final class RankGroup implements AutoCloseable {
    private final List<Backend> backends;
    private final List<Communicator> communicators;

    private RankGroup(List<Backend> backends, List<Communicator> communicators) {
        this.backends = backends;
        this.communicators = communicators;
    }

    /**
     * Opens every local device of {@code world} ({@code threads} is the process's CPU budget,
     * shared by CPU devices) and joins the group. A device that cannot be opened, a world of
     * several processes on devices other than CUDA, or a failed rendezvous is an error naming it;
     * whatever was opened is closed again.
     */
    public static RankGroup open(World world, int threads, Precision precision) throws RendezvousException {
        if (!world.isSingleProcess() && world.localDevices().stream().anyMatch(d -> d.kind() != DeviceSpec.Kind.CUDA)) {
            throw new IllegalArgumentException(world.describe() + ": ranks in several processes need NCCL, so CUDA devices "
                    + "(--device cuda); CPU and emulated ranks train as threads of one process (--devices N without a launcher)");
        }
        List<Backend> backends = new ArrayList<>();
        try {
            int perDevice = world.cpuThreadsPerDevice(threads);
            for (DeviceSpec spec : world.localDevices()) {
                backends.add(Devices.open(spec, perDevice, precision));
            }
            List<Communicator> communicators;
            if (world.isSingleProcess()) {
                communicators = Communicators.inProcess(backends);
            } else {
                byte[] id = Rendezvous.exchange(world, () -> NcclCommunicator.newUniqueId(backends.getFirst()));
                communicators = List.copyOf(NcclCommunicator.create(id, world.worldSize(), world.firstRank(), backends,
                        Communicators.DEFAULT_TIMEOUT));
            }
            return new RankGroup(List.copyOf(backends), communicators);
        } catch (RendezvousException | RuntimeException e) {
            backends.forEach(Backend::close);
            throw e;
        }
    }

    /** One communicator per local rank, in local order; rank {@code world.firstRank() + i} at index i. */
    public List<Communicator> communicators() {
        return communicators;
    }

    @Override
    public void close() {
        communicators.forEach(Communicator::close);
        backends.forEach(Backend::close);
    }
}
