package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * The emulator's NCCL stand-in (native/emu/nccl_emu.cpp) through {@link NcclAbi}, at the level of
 * NCCL's own calls: what spin.dist's contract tests cannot reach from one thread per rank.
 */
class EmulatedNcclTest {
    /** One rank's device, stream and buffer of {@code n} floats. */
    private record Rank(int device, CudaStream stream, DeviceMemory buffer) {}

    private static Rank rank(CudaRuntime cuda, int device, int n) {
        cuda.setDevice(device);
        return new Rank(device, cuda.createStream(), cuda.allocate((long) n * Float.BYTES));
    }

    private static void upload(Rank r, float... values) {
        try (Arena arena = Arena.ofConfined()) {
            DeviceMemory.copyFromHost(r.stream(), r.buffer().segment(), arena.allocateFrom(JAVA_FLOAT, values));
        }
    }

    private static float[] download(Rank r) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(r.buffer().byteSize());
            DeviceMemory.download(r.stream(), host, r.buffer().segment());
            return host.toArray(JAVA_FLOAT);
        }
    }

    private static void close(List<Rank> ranks) {
        for (Rank r : ranks) {
            r.buffer().close();
            r.stream().close();
        }
    }

    @Test
    void oneThreadDrivesEveryRankInsideGroups() {
        CudaRuntime cuda = Emulator.require();
        NcclAbi nccl = NcclAbi.forRuntime(cuda);
        assertTrue(nccl.version() >= 21300, "ncclRemoteError needs NCCL 2.13: " + nccl.version());
        int world = 3;
        byte[] id = nccl.uniqueId();
        List<Rank> ranks = new ArrayList<>();
        List<MemorySegment> comms = new ArrayList<>();
        try {
            for (int r = 0; r < world; r++) {
                ranks.add(rank(cuda, r, 2));
            }
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                // Ungrouped, the first ncclCommInitRank would wait for ranks this thread has yet to make.
                nccl.groupStart();
                for (int r = 0; r < world; r++) {
                    cuda.setDevice(r);
                    comms.add(nccl.commInitRank(world, id, r));
                }
                nccl.groupEnd();
                for (int r = 0; r < world; r++) {
                    assertEquals(world, nccl.commCount(comms.get(r)));
                    assertEquals(r, nccl.commUserRank(comms.get(r)));
                    upload(ranks.get(r), r + 1, 0.5f * (r + 1));
                }
                nccl.groupStart();
                for (int r = 0; r < world; r++) {
                    Rank rank = ranks.get(r);
                    nccl.allReduce(rank.buffer().segment(), rank.buffer().segment(), 2, NcclAbi.FLOAT32, NcclAbi.SUM,
                            comms.get(r), rank.stream().handle());
                }
                nccl.groupEnd();
            });
            for (int r = 0; r < world; r++) {
                assertArrayEquals(new float[] {6, 3}, download(ranks.get(r)), "rank " + r);
                assertEquals(NcclAbi.SUCCESS, nccl.commGetAsyncError(comms.get(r)));
            }
        } finally {
            comms.forEach(nccl::commDestroy);
            close(ranks);
        }
    }

    @Test
    void disagreeingCallsAndAStreamOfAnotherDeviceAreRefused() throws Exception {
        CudaRuntime cuda = Emulator.require();
        NcclAbi nccl = NcclAbi.forRuntime(cuda);
        byte[] id = nccl.uniqueId();
        List<Rank> ranks = new ArrayList<>();
        List<MemorySegment> comms = new ArrayList<>();
        try {
            for (int r = 0; r < 2; r++) {
                ranks.add(rank(cuda, r, 4));
            }
            nccl.groupStart();
            for (int r = 0; r < 2; r++) {
                cuda.setDevice(r);
                comms.add(nccl.commInitRank(2, id, r));
            }
            nccl.groupEnd();
            NcclException wrongStream = assertThrows(NcclException.class, () -> nccl.allReduce(ranks.get(0).buffer().segment(),
                    ranks.get(0).buffer().segment(), 4, NcclAbi.FLOAT32, NcclAbi.SUM, comms.get(0), ranks.get(1).stream().handle()));
            assertEquals(NcclAbi.INVALID_ARGUMENT, wrongStream.result());
            assertTrue(wrongStream.getMessage().contains("the stream belongs to device 1"), wrongStream.getMessage());
            // Rank 1 sums 3 elements where rank 0 sums 4: NCCL would corrupt memory; the stand-in refuses both.
            nccl.groupStart();
            nccl.allReduce(ranks.get(0).buffer().segment(), ranks.get(0).buffer().segment(), 4, NcclAbi.FLOAT32,
                    NcclAbi.SUM, comms.get(0), ranks.get(0).stream().handle());
            nccl.allReduce(ranks.get(1).buffer().segment(), ranks.get(1).buffer().segment(), 3, NcclAbi.FLOAT32,
                    NcclAbi.SUM, comms.get(1), ranks.get(1).stream().handle());
            NcclException disagree = assertThrows(NcclException.class, nccl::groupEnd);
            assertEquals(NcclAbi.INVALID_USAGE, disagree.result());
            assertTrue(disagree.getMessage().contains("rank 1: ncclAllReduce(3 x ncclFloat32)"), disagree.getMessage());
        } finally {
            comms.forEach(nccl::commDestroy);
            close(ranks);
        }
    }

    @Test
    void anAbortWakesTheRankWaitingInACollective() throws Exception {
        CudaRuntime cuda = Emulator.require();
        NcclAbi nccl = NcclAbi.forRuntime(cuda);
        byte[] id = nccl.uniqueId();
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try {
            Future<MemorySegment> second = threads.submit(() -> {
                cuda.setDevice(1);
                return nccl.commInitRank(2, id, 1);
            });
            cuda.setDevice(0);
            MemorySegment first = nccl.commInitRank(2, id, 0);
            MemorySegment other = second.get();
            Future<NcclException> waiting = threads.submit(() -> {
                Rank r = rank(cuda, 1, 1);
                try {
                    nccl.allReduce(r.buffer().segment(), r.buffer().segment(), 1, NcclAbi.FLOAT32, NcclAbi.SUM, other,
                            r.stream().handle());
                    return null;
                } catch (NcclException e) {
                    return e;
                } finally {
                    close(List.of(r));
                }
            });
            Thread.sleep(100);
            assertFalse(waiting.isDone(), "rank 1's all-reduce waits for rank 0");
            nccl.commAbort(first);
            NcclException stopped = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> waiting.get());
            assertEquals(NcclAbi.REMOTE_ERROR, stopped.result());
            assertTrue(stopped.getMessage().contains("rank 0 called ncclCommAbort"), stopped.getMessage());
            assertEquals(NcclAbi.REMOTE_ERROR, nccl.commGetAsyncError(other));
            nccl.commDestroy(other);
            NcclException dead = assertThrows(NcclException.class, () -> nccl.commCount(other));
            assertEquals(NcclAbi.INVALID_ARGUMENT, dead.result());
        } finally {
            threads.shutdownNow();
        }
    }
}
