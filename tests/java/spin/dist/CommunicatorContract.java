package spin.dist;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import spin.backend.BFloat16;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;

/**
 * The {@link Communicator} contract, written once and run for every implementation and device:
 * {@link InProcessCommunicatorTest} (CPU ranks), {@link EmulatedInProcessCommunicatorTest} and
 * {@link EmulatedNcclCommunicatorTest} (ranks on emulated CUDA devices). Each rank runs on its own
 * thread, against results worked out here: rank r holds {@code value(r, i)}, so what every rank
 * must end with has a closed form. The cases an implementation does not promise (detecting
 * disagreeing calls, a timeout of its own) are skipped for it, saying so.
 */
abstract class CommunicatorContract {
    static final Duration GENEROUS = Duration.ofSeconds(30);

    /** {@code worldSize} backends, one per rank, each a device of its own; the test closes them. */
    abstract List<Backend> openBackends(int worldSize);

    /** One group over {@code backends}, rank r on {@code backends.get(r)}. */
    abstract List<? extends Communicator> group(List<Backend> backends, Duration timeout);

    /** Whether ranks whose calls disagree all get an IllegalArgumentException and may go on. */
    abstract boolean detectsDisagreement();

    /** Whether the communicator stops the group by itself when a rank never arrives. */
    abstract boolean hasTimeout();

    /** What one rank does with its communicator; its return value is that rank's result. */
    interface RankBody<T> {
        T run(Communicator comm) throws Exception;
    }

    /** A rank's result or the error it ended with. */
    record Outcome<T>(T value, Throwable error) {}

    /**
     * Runs {@code body} on {@code worldSize} CPU ranks, one thread each, and returns each rank's
     * outcome in rank order. A rank whose body throws aborts the group, as a launcher would.
     */
    <T> List<Outcome<T>> runRanks(int worldSize, Duration timeout, RankBody<T> body) throws InterruptedException {
        List<Backend> backends = openBackends(worldSize);
        List<? extends Communicator> comms;
        try {
            comms = group(backends, timeout);
        } catch (RuntimeException e) {
            backends.forEach(Backend::close);
            throw e;
        }
        ExecutorService threads = Executors.newFixedThreadPool(worldSize);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (Communicator comm : comms) {
                futures.add(threads.submit(() -> {
                    try {
                        return body.run(comm);
                    } catch (Throwable e) {
                        comm.abort(e);
                        throw e;
                    }
                }));
            }
            List<Outcome<T>> outcomes = new ArrayList<>();
            for (Future<T> future : futures) {
                try {
                    outcomes.add(new Outcome<>(future.get(), null));
                } catch (ExecutionException e) {
                    outcomes.add(new Outcome<>(null, e.getCause()));
                }
            }
            return outcomes;
        } finally {
            threads.shutdownNow();
            comms.forEach(Communicator::close);
            backends.forEach(Backend::close);
        }
    }

    /** Each rank's result, failing the test with the first rank's error if any rank failed. */
    static <T> List<T> results(List<Outcome<T>> outcomes) {
        List<T> values = new ArrayList<>();
        for (int r = 0; r < outcomes.size(); r++) {
            if (outcomes.get(r).error() != null) {
                throw new AssertionError("rank " + r + " failed", outcomes.get(r).error());
            }
            values.add(outcomes.get(r).value());
        }
        return values;
    }

    /** Distinct per rank and element, exact in fp32 and in bf16 (a few significant bits). */
    private static float value(int rank, int i) {
        return (rank + 1) * 16 + i * 0.5f;
    }

    private static float[] rankValues(int rank, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = value(rank, i);
        }
        return values;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void allGatherConcatenatesTheRanksInRankOrder(int worldSize) throws Exception {
        for (DType dtype : List.of(DType.F32, DType.BF16)) {
            int n = 5;
            List<float[]> gathered = results(runRanks(worldSize, GENEROUS, comm -> {
                Backend b = comm.backend();
                try (Tensor in = b.allocate(dtype, n); Tensor out = b.allocate(dtype, worldSize * n)) {
                    b.write(in, rankValues(comm.rank(), n));
                    comm.allGather(out, in);
                    return b.read(out);
                }
            }));
            float[] expected = new float[worldSize * n];
            for (int r = 0; r < worldSize; r++) {
                for (int i = 0; i < n; i++) {
                    expected[r * n + i] = value(r, i);
                }
            }
            for (int r = 0; r < worldSize; r++) {
                assertArrayEquals(expected, gathered.get(r), dtype + " rank " + r);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void allGatherInPlaceFromTheRanksOwnSlice(int worldSize) throws Exception {
        int n = 3;
        List<float[]> gathered = results(runRanks(worldSize, GENEROUS, comm -> {
            Backend b = comm.backend();
            try (Tensor out = b.allocate(DType.F32, worldSize * n)) {
                Tensor own = out.view((long) comm.rank() * n, n);
                b.write(own, rankValues(comm.rank(), n));
                comm.allGather(out, own);
                return b.read(out);
            }
        }));
        for (float[] result : gathered) {
            for (int r = 0; r < worldSize; r++) {
                for (int i = 0; i < n; i++) {
                    assertEquals(value(r, i), result[r * n + i]);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void reduceScatterGivesEachRankItsSliceOfTheSum(int worldSize) throws Exception {
        int n = 4;
        // Rank r contributes (r + 1) * (j + 1) to element j of the whole: sums of small integers are
        // exact in fp32, so the sum's closed form is (j + 1) * N(N + 1) / 2 in any order.
        List<float[]> slices = results(runRanks(worldSize, GENEROUS, comm -> {
            Backend b = comm.backend();
            float[] whole = new float[worldSize * n];
            for (int j = 0; j < whole.length; j++) {
                whole[j] = (comm.rank() + 1) * (j + 1);
            }
            try (Tensor in = b.fromHost(whole, worldSize * n); Tensor out = b.allocate(DType.F32, n)) {
                comm.reduceScatter(out, in);
                return b.read(out);
            }
        }));
        float rankSum = worldSize * (worldSize + 1) / 2f;
        for (int r = 0; r < worldSize; r++) {
            float[] expected = new float[n];
            for (int i = 0; i < n; i++) {
                expected[i] = (r * n + i + 1) * rankSum;
            }
            assertArrayEquals(expected, slices.get(r), "rank " + r);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void allReduceSumsEveryRanksValues(int worldSize) throws Exception {
        int n = 6;
        List<float[]> sums = results(runRanks(worldSize, GENEROUS, comm -> {
            Backend b = comm.backend();
            try (Tensor inOut = b.fromHost(rankValues(comm.rank(), n), n)) {
                comm.allReduce(inOut);
                return b.read(inOut);
            }
        }));
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            // sum over r of (r + 1) * 16 + i / 2, exact: small multiples of 1/2.
            expected[i] = 16f * worldSize * (worldSize + 1) / 2 + worldSize * i * 0.5f;
        }
        for (int r = 0; r < worldSize; r++) {
            assertArrayEquals(expected, sums.get(r), "rank " + r);
        }
    }

    @Test
    void sumsRunInFp32InRankOrder() throws Exception {
        // x + 1 rounds back to x in fp32 near |x| = 1e8 (the ulp there is 8), so the order of a sum
        // shows. Element 0: in rank order ((1e8 + 1) - 1e8) + 1 = 1; from the last rank down, or
        // pairwise as a tree, 0. Element 1: in rank order ((1e8 + 1) + 1) - 1e8 = 0; from rank 0 and
        // then the others downwards, 2. In double either would be 2.
        float[][] byRank = {{1e8f, 1e8f, -0f}, {1f, 1f, -0f}, {-1e8f, 1f, -0f}, {1f, -1e8f, -0f}};
        List<float[]> sums = results(runRanks(4, GENEROUS, comm -> {
            Backend b = comm.backend();
            try (Tensor inOut = b.fromHost(byRank[comm.rank()], 3)) {
                comm.allReduce(inOut);
                return b.read(inOut);
            }
        }));
        for (float[] sum : sums) {
            assertEquals(1f, sum[0]);
            assertEquals(0f, sum[1]);
            // The sum starts from rank 0's value, not from +0, so -0 + -0 + ... stays -0.
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(sum[2]));
        }
    }

    @Test
    void f64AllReduceSumsInDoubleInRankOrder() throws Exception {
        // x + 1 rounds back to x in double at 2^53 (the ulp there is 2, and the tie goes to the
        // even 2^53), so the order shows as in the fp32 case: rank order gives 1 and 0 where exact
        // sums give 2. Element 2 holds values with no fp32 form: its sum must be Java's double sum
        // in rank order, bit for bit, which an fp32 accumulation would miss.
        double big = 0x1p53;
        double[][] byRank = {{big, big, 0.1}, {1, 1, 0.2}, {-big, 1, 0.3}, {1, -big, 1e-30}};
        List<double[]> sums = results(runRanks(4, GENEROUS, comm -> {
            Backend b = comm.backend();
            try (Tensor inOut = b.allocate(DType.F64, 3)) {
                b.write(inOut, byRank[comm.rank()]);
                comm.allReduce(inOut);
                return b.readDoubles(inOut);
            }
        }));
        double third = ((0.1 + 0.2) + 0.3) + 1e-30;
        for (int r = 0; r < sums.size(); r++) {
            assertEquals(1.0, sums.get(r)[0], "rank " + r);
            assertEquals(0.0, sums.get(r)[1], "rank " + r);
            assertEquals(Double.doubleToRawLongBits(third), Double.doubleToRawLongBits(sums.get(r)[2]), "rank " + r);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void broadcastCopiesTheRootsValuesToEveryRank(int worldSize) throws Exception {
        int n = 4;
        for (DType dtype : List.of(DType.F32, DType.BF16)) {
            for (int root = 0; root < worldSize; root++) {
                int broadcastRoot = root;
                List<float[]> received = results(runRanks(worldSize, GENEROUS, comm -> {
                    Backend b = comm.backend();
                    try (Tensor inOut = b.allocate(dtype, n)) {
                        b.write(inOut, rankValues(comm.rank(), n));
                        comm.broadcast(inOut, broadcastRoot);
                        return b.read(inOut);
                    }
                }));
                for (int r = 0; r < worldSize; r++) {
                    assertArrayEquals(rankValues(root, n), received.get(r), dtype + " root " + root + " rank " + r);
                }
            }
        }
    }

    @Test
    void bf16GatherMovesBitsWithoutRounding() throws Exception {
        // bf16 values with every mantissa bit set: a round trip through a wider or narrower rounding
        // would change them.
        short[] bits = {(short) 0x3FFF, (short) 0xBF7F, (short) 0x0001, (short) 0x7F7F};
        List<float[]> gathered = results(runRanks(2, GENEROUS, comm -> {
            Backend b = comm.backend();
            try (Tensor in = b.allocate(DType.BF16, 2); Tensor out = b.allocate(DType.BF16, 4)) {
                int r = comm.rank();
                b.write(in, new float[] {BFloat16.toFloat(bits[2 * r]), BFloat16.toFloat(bits[2 * r + 1])});
                comm.allGather(out, in);
                return b.read(out);
            }
        }));
        for (float[] result : gathered) {
            for (int k = 0; k < bits.length; k++) {
                assertEquals(bits[k], BFloat16.fromFloat(result[k]), "element " + k);
            }
        }
    }

    @Test
    void manyCollectivesInARowKeepEachRoundsDataApart() throws Exception {
        // A fast rank's next contribution must not leak into a round a slow rank is still reading:
        // round k's sum has its own closed form, and rank 3 sleeps now and then so the others run ahead.
        int worldSize = 4;
        int rounds = 200;
        List<float[]> sums = results(runRanks(worldSize, GENEROUS, comm -> {
            Backend b = comm.backend();
            float[] perRound = new float[rounds];
            try (Tensor inOut = b.allocate(DType.F32, 1)) {
                for (int k = 0; k < rounds; k++) {
                    if (comm.rank() == 3 && k % 50 == 0) {
                        Thread.sleep(5);
                    }
                    b.write(inOut, new float[] {k * 8 + comm.rank()});
                    comm.allReduce(inOut);
                    perRound[k] = b.read(inOut)[0];
                }
            }
            return perRound;
        }));
        float[] expected = new float[rounds];
        for (int k = 0; k < rounds; k++) {
            expected[k] = worldSize * k * 8 + (0 + 1 + 2 + 3);
        }
        for (int r = 0; r < worldSize; r++) {
            assertArrayEquals(expected, sums.get(r), "rank " + r);
        }
    }

    @Test
    void barrierHoldsEveryRankUntilAllArrive() throws Exception {
        int worldSize = 4;
        AtomicInteger arrived = new AtomicInteger();
        List<Integer> seen = results(runRanks(worldSize, GENEROUS, comm -> {
            Thread.sleep(20L * comm.rank());
            arrived.incrementAndGet();
            comm.barrier();
            return arrived.get();
        }));
        for (int seenByRank : seen) {
            assertEquals(worldSize, seenByRank);
        }
    }

    @Test
    void resultsAreBitIdenticalRunToRunAndAcrossRanks() throws Exception {
        int worldSize = 4;
        int n = 257;
        RankBody<float[]> step = comm -> {
            Backend b = comm.backend();
            SplittableRandom random = new SplittableRandom(1000 + comm.rank());
            float[] whole = new float[worldSize * n];
            for (int j = 0; j < whole.length; j++) {
                whole[j] = (float) random.nextGaussian() * (float) Math.pow(10, random.nextInt(-3, 4));
            }
            try (Tensor in = b.fromHost(whole, whole.length); Tensor slice = b.allocate(DType.F32, n)) {
                comm.reduceScatter(slice, in);
                comm.allReduce(in);
                float[] both = new float[n + whole.length];
                System.arraycopy(b.read(slice), 0, both, 0, n);
                System.arraycopy(b.read(in), 0, both, n, whole.length);
                return both;
            }
        };
        List<float[]> first = results(runRanks(worldSize, GENEROUS, step));
        List<float[]> second = results(runRanks(worldSize, GENEROUS, step));
        for (int r = 0; r < worldSize; r++) {
            assertArrayEquals(bits(first.get(r)), bits(second.get(r)), "rank " + r + " run to run");
            float[] allReduced = Arrays.copyOfRange(first.get(r), n, first.get(r).length);
            float[] rank0AllReduced = Arrays.copyOfRange(first.get(0), n, first.get(0).length);
            assertArrayEquals(bits(rank0AllReduced), bits(allReduced), "rank " + r + " against rank 0");
            // A rank's reduce-scatter slice is its slice of the all-reduce, bit for bit.
            float[] slice = Arrays.copyOfRange(first.get(r), 0, n);
            float[] ofAllReduce = Arrays.copyOfRange(allReduced, r * n, (r + 1) * n);
            assertArrayEquals(bits(ofAllReduce), bits(slice), "rank " + r + " slice");
        }
    }

    private static int[] bits(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }

    @Test
    void aSizeThatDoesNotFitIsRefusedOnThatRankAndStopsTheOthers() throws Exception {
        List<Outcome<Void>> outcomes = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> runRanks(2, GENEROUS, comm -> {
            Backend b = comm.backend();
            // Rank 1's out is one element short of 2 * 3.
            try (Tensor in = b.allocate(DType.F32, 3); Tensor out = b.allocate(DType.F32, comm.rank() == 1 ? 5 : 6)) {
                comm.allGather(out, in);
            }
            return null;
        }));
        IllegalArgumentException refused = assertInstanceOf(IllegalArgumentException.class, outcomes.get(1).error());
        assertTrue(refused.getMessage().contains("6 elements"), refused.getMessage());
        CommunicatorException stopped = assertInstanceOf(CommunicatorException.class, outcomes.get(0).error());
        assertEquals(1, stopped.failedRank());
        assertSame(refused, stopped.getCause());
    }

    @Test
    void ranksThatDisagreeOnSizesAllGetIllegalArgumentAndCanGoOn() throws Exception {
        assumeTrue(detectsDisagreement(), "this communicator does not detect disagreeing calls (NCCL does not)");
        List<Outcome<Float>> outcomes = runRanks(3, GENEROUS, comm -> {
            Backend b = comm.backend();
            // Each call fits on its own rank; rank 2's element count differs from the others'.
            try (Tensor inOut = b.allocate(DType.F32, comm.rank() == 2 ? 4 : 3)) {
                try {
                    comm.allReduce(inOut);
                    throw new AssertionError("disagreeing sizes were summed");
                } catch (IllegalArgumentException expected) {
                    assertTrue(expected.getMessage().contains("rank 2: allReduce(F32 x 4)"), expected.getMessage());
                    assertTrue(expected.getMessage().contains("rank 0: allReduce(F32 x 3)"), expected.getMessage());
                }
            }
            try (Tensor one = b.fromHost(new float[] {comm.rank()}, 1)) {
                comm.allReduce(one);
                return b.read(one)[0];
            }
        });
        for (float sum : results(outcomes)) {
            assertEquals(0f + 1f + 2f, sum);
        }
    }

    @Test
    void reduceScatterInPlaceIntoTheRanksOwnSliceAndNoOtherOverlap() throws Exception {
        List<Outcome<float[]>> outcomes = runRanks(2, GENEROUS, comm -> {
            Backend b = comm.backend();
            try (Tensor in = b.fromHost(new float[] {1f, 2f, 3f, 4f}, 4)) {
                comm.reduceScatter(in.view(comm.rank() * 2L, 2), in);
                float[] inPlace = b.read(in.view(comm.rank() * 2L, 2));
                if (comm.rank() == 0) {
                    // Rank 0 names rank 1's slice: that overlap is not the in-place form.
                    comm.reduceScatter(in.view(2, 2), in);
                }
                return inPlace;
            }
        });
        assertArrayEquals(new float[] {6f, 8f}, outcomes.get(1).value());
        IllegalArgumentException refused = assertInstanceOf(IllegalArgumentException.class, outcomes.get(0).error());
        assertTrue(refused.getMessage().contains("overlaps"), refused.getMessage());
    }

    @Test
    void aTensorOfAnotherBackendIsIllegalArgument() throws Exception {
        try (Backend other = new CpuBackend(1)) {
            List<Outcome<Void>> outcomes = runRanks(1, GENEROUS, comm -> {
                try (Tensor foreign = other.allocate(DType.F32, 2)) {
                    comm.allReduce(foreign);
                }
                return null;
            });
            IllegalArgumentException refused = assertInstanceOf(IllegalArgumentException.class, outcomes.get(0).error());
            assertTrue(refused.getMessage().contains("is not on rank 0's backend"), refused.getMessage());
        }
    }

    @Test
    void aWrongDtypeIsIllegalArgument() throws Exception {
        List<Outcome<Void>> outcomes = runRanks(1, GENEROUS, comm -> {
            try (Tensor ints = comm.backend().allocate(DType.I32, 2)) {
                comm.allReduce(ints);
            }
            return null;
        });
        IllegalArgumentException refused = assertInstanceOf(IllegalArgumentException.class, outcomes.get(0).error());
        assertTrue(refused.getMessage().contains("sums F32 or F64"), refused.getMessage());
    }

    @Test
    void aRankThatThrowsStopsTheOthersWithItsError() {
        RuntimeException boom = new RuntimeException("rank 1 ran out of luck");
        // The communicator's own timeout is far longer than the test's bound: the others must stop
        // because rank 1 failed, not because they waited.
        List<Outcome<Void>> outcomes = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> runRanks(4, Duration.ofMinutes(5), comm -> {
            Backend b = comm.backend();
            try (Tensor inOut = b.fromHost(new float[] {1f, 2f}, 2)) {
                comm.allReduce(inOut);
                if (comm.rank() == 1) {
                    throw boom;
                }
                // The others are waiting in this second collective when rank 1 fails.
                comm.allReduce(inOut);
            }
            return null;
        }));
        assertSame(boom, outcomes.get(1).error());
        for (int r : List.of(0, 2, 3)) {
            CommunicatorException stopped = assertInstanceOf(CommunicatorException.class, outcomes.get(r).error(), "rank " + r);
            assertEquals(1, stopped.failedRank());
            assertSame(boom, stopped.getCause());
            assertTrue(stopped.getMessage().contains("rank 1"), stopped.getMessage());
            assertTrue(stopped.missingRanks().isEmpty());
        }
    }

    @Test
    void aRankThatNeverArrivesTimesOutNamingIt() {
        assumeTrue(hasTimeout(), "this communicator has no timeout of its own (NCCL leaves it to a watchdog)");
        List<Outcome<Void>> outcomes = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> runRanks(3, Duration.ofMillis(300), comm -> {
            if (comm.rank() != 2) {
                comm.barrier();
            }
            return null;
        }));
        assertNull(outcomes.get(2).error());
        for (int r : List.of(0, 1)) {
            CommunicatorException timedOut = assertInstanceOf(CommunicatorException.class, outcomes.get(r).error(), "rank " + r);
            assertEquals(List.of(2), timedOut.missingRanks());
            assertTrue(timedOut.getMessage().contains("ranks [2] that never arrived"), timedOut.getMessage());
        }
    }
}
