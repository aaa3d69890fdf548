package spin.dist;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.nativebind.NcclAbi;

/**
 * The {@link Communicator} contract for {@link NcclCommunicator} on emulated CUDA devices (the
 * emulator's NCCL stand-in), made by {@link Communicators#inProcess}; plus what only NCCL has:
 * the unique id that ranks made by separate threads (processes, on a cluster) meet through.
 */
class EmulatedNcclCommunicatorTest extends CommunicatorContract {
    @Override
    List<Backend> openBackends(int worldSize) {
        return EmulatedInProcessCommunicatorTest.emulatedDevices(worldSize);
    }

    @Override
    List<? extends Communicator> group(List<Backend> backends, Duration timeout) {
        List<Communicator> comms = Communicators.inProcess(backends, timeout);
        for (Communicator comm : comms) {
            assertInstanceOf(NcclCommunicator.class, comm, "CUDA backends get NCCL");
        }
        return comms;
    }

    @Override
    boolean detectsDisagreement() {
        return false;
    }

    @Override
    boolean hasTimeout() {
        return false;
    }

    @Test
    void theFactoryGivesInProcessCommunicatorsToCpuRanks() {
        List<Backend> cpus = List.of(new CpuBackend(1), new CpuBackend(1));
        try {
            List<Communicator> comms = Communicators.inProcess(cpus);
            assertEquals(2, comms.size());
            for (int r = 0; r < 2; r++) {
                assertInstanceOf(InProcessCommunicator.class, comms.get(r));
                assertEquals(r, comms.get(r).rank());
                assertEquals(2, comms.get(r).worldSize());
                assertEquals(cpus.get(r), comms.get(r).backend());
            }
        } finally {
            cpus.forEach(Backend::close);
        }
    }

    /**
     * Ranks 0 and 1 made together by one thread (one "process" with two GPUs, grouped), rank 2 by
     * another thread alone, meeting through one unique id as the processes of a cluster do.
     */
    @Test
    void ranksMadeByDifferentThreadsMeetThroughTheUniqueId() throws Exception {
        List<Backend> backends = openBackends(3);
        ExecutorService threads = Executors.newFixedThreadPool(3);
        try {
            byte[] id = NcclCommunicator.newUniqueId(backends.getFirst());
            assertEquals(NcclAbi.UNIQUE_ID_BYTES, id.length);
            Future<List<NcclCommunicator>> firstTwo = threads.submit(() -> NcclCommunicator.create(id, 3, 0, backends.subList(0, 2)));
            Future<List<NcclCommunicator>> last = threads.submit(() -> NcclCommunicator.create(id, 3, 2, backends.subList(2, 3)));
            List<NcclCommunicator> comms = new ArrayList<>();
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                comms.addAll(firstTwo.get());
                comms.addAll(last.get());
            });
            List<Future<float[]>> sums = new ArrayList<>();
            for (NcclCommunicator comm : comms) {
                sums.add(threads.submit(() -> {
                    Backend b = comm.backend();
                    try (Tensor t = b.fromHost(new float[] {comm.rank() + 1, 10 * (comm.rank() + 1)}, 2)) {
                        comm.allReduce(t);
                        return b.read(t);
                    }
                }));
            }
            for (int r = 0; r < 3; r++) {
                assertEquals(r, comms.get(r).rank());
                assertArrayEquals(new float[] {6, 60}, sums.get(r).get(), "rank " + r);
            }
            comms.forEach(Communicator::close);
        } finally {
            threads.shutdownNow();
            backends.forEach(Backend::close);
        }
    }

    @Test
    void badArgumentsOfTheFactoryAreRefusedBeforeNcclIsCalled() {
        List<Backend> backends = openBackends(1);
        try (Backend cpu = new CpuBackend(1)) {
            IllegalArgumentException shortId = assertThrows(IllegalArgumentException.class,
                    () -> NcclCommunicator.create(new byte[16], 1, 0, backends));
            assertTrue(shortId.getMessage().contains("128 bytes"), shortId.getMessage());
            byte[] id = NcclCommunicator.newUniqueId(backends.getFirst());
            IllegalArgumentException outside = assertThrows(IllegalArgumentException.class,
                    () -> NcclCommunicator.create(id, 1, 1, backends));
            assertTrue(outside.getMessage().contains("world of 1"), outside.getMessage());
            IllegalArgumentException notCuda = assertThrows(IllegalArgumentException.class,
                    () -> NcclCommunicator.create(id, 1, 0, List.of(cpu)));
            assertTrue(notCuda.getMessage().contains("needs a CUDA device"), notCuda.getMessage());
        } finally {
            backends.forEach(Backend::close);
        }
    }

    @Test
    void aClosedCommunicatorRefusesCollectives() {
        List<Backend> backends = openBackends(1);
        try {
            Communicator comm = Communicators.inProcess(backends).getFirst();
            comm.close();
            comm.close();
            try (Tensor t = backends.getFirst().allocate(DType.F32, 1)) {
                IllegalStateException closed = assertThrows(IllegalStateException.class, () -> comm.allReduce(t));
                assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
            }
        } finally {
            backends.forEach(Backend::close);
        }
    }
}
