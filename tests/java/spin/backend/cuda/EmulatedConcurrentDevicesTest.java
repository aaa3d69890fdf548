package spin.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceUnderTest;
import spin.backend.Tensor;
import spin.nativebind.CudaException;
import spin.nativebind.CudaRuntime;

/**
 * Several emulated CUDA devices driven at once, one Java thread each, as the ranks of a one-JVM
 * group drive theirs: each device's results must be bit for bit those of the same work run alone
 * (the emulator's kernels have a fixed order, so any cross-talk between threads — a shared current
 * device, a shared pool, a launch interleaved with another — shows as different bits or an error).
 */
class EmulatedConcurrentDevicesTest {

    /** Distinct data per device; a matmul, an RMSNorm, reductions, and every result read back. */
    private static double[] workload(Backend b, int seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int rows = 7;
        int in = 48;
        int out = 40;
        float[] x = new float[rows * in];
        float[] w = new float[out * in];
        float[] g = new float[out];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) random.nextGaussian() * 0.2f;
        }
        for (int i = 0; i < g.length; i++) {
            g[i] = 1f + (float) random.nextGaussian() * 0.1f;
        }
        try (Tensor xs = b.fromHost(x, rows, in); Tensor ws = b.fromHost(w, out, in); Tensor gs = b.fromHost(g, out);
                Tensor product = b.allocate(DType.F32, rows, out); Tensor normed = b.allocate(DType.F32, rows, out);
                Tensor rstd = b.allocate(DType.F32, rows); Tensor mean = b.allocate(DType.F64, 1)) {
            b.matmulForward(product, xs, ws);
            b.rmsnormForward(normed, rstd, product, gs, 1e-5f);
            b.sum(mean, normed, rows * out);
            float[] values = b.read(normed);
            float[] rstds = b.read(rstd);
            double[] result = new double[values.length + rstds.length + 2];
            for (int i = 0; i < values.length; i++) {
                result[i] = values[i];
            }
            for (int i = 0; i < rstds.length; i++) {
                result[values.length + i] = rstds[i];
            }
            result[values.length + rstds.length] = b.readDoubles(mean)[0];
            result[values.length + rstds.length + 1] = b.sumOfSquares(product);
            return result;
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void devicesOnThreadsOfTheirOwnGiveTheBitsOfEachRunAlone(int devices) throws Exception {
        List<Backend> backends = new ArrayList<>();
        try {
            for (int d = 0; d < devices; d++) {
                backends.add(DeviceUnderTest.openOrSkip("cuda-emu:" + d));
            }
            // Alone: one device at a time, on this thread.
            List<double[]> alone = new ArrayList<>();
            for (int d = 0; d < devices; d++) {
                alone.add(workload(backends.get(d), 100 + d));
            }
            // Together: every device on its own thread, started at one barrier, several rounds.
            CyclicBarrier start = new CyclicBarrier(devices);
            ExecutorService threads = Executors.newFixedThreadPool(devices);
            try {
                List<Future<List<double[]>>> futures = new ArrayList<>();
                for (int d = 0; d < devices; d++) {
                    int device = d;
                    futures.add(threads.submit(() -> {
                        start.await();
                        List<double[]> rounds = new ArrayList<>();
                        for (int k = 0; k < 5; k++) {
                            rounds.add(workload(backends.get(device), 100 + device));
                        }
                        return rounds;
                    }));
                }
                assertTimeoutPreemptively(Duration.ofMinutes(2), () -> {
                    for (int d = 0; d < devices; d++) {
                        List<double[]> rounds = futures.get(d).get();
                        for (int k = 0; k < rounds.size(); k++) {
                            assertArrayEquals(alone.get(d), rounds.get(k), "device " + d + " round " + k);
                        }
                    }
                });
            } finally {
                threads.shutdownNow();
            }
        } finally {
            backends.forEach(Backend::close);
        }
    }

    @Test
    void eachDeviceCountsOnlyItsOwnPoolAndTheCurrentDeviceIsPerThread() throws Exception {
        try (Backend zero = DeviceUnderTest.openOrSkip("cuda-emu:0"); Backend one = DeviceUnderTest.openOrSkip("cuda-emu:1")) {
            zero.synchronize();
            one.synchronize();
            long zeroBefore = zero.memoryUsage().orElseThrow().currentBytes();
            long oneBefore = one.memoryUsage().orElseThrow().currentBytes();
            try (Tensor big = one.allocate(DType.F32, 1 << 18)) {
                assertEquals(oneBefore + (1L << 20), one.memoryUsage().orElseThrow().currentBytes());
                assertEquals(zeroBefore, zero.memoryUsage().orElseThrow().currentBytes(), "device 1's tensor counted on device 0");
                // Another thread starts with device 0 current, as in CUDA, whatever this thread set.
                ExecutorService other = Executors.newSingleThreadExecutor();
                try {
                    CudaRuntime runtime = CudaRuntime.loadEmulated();
                    long zeroSeenThere = other.submit(() -> runtime.poolUsage().currentBytes()).get();
                    assertEquals(zeroBefore, zeroSeenThere);
                } finally {
                    other.shutdownNow();
                }
            }
        }
    }

    @Test
    void aLaunchIntoAnotherDevicesStreamIsRefused() {
        try (Backend zero = DeviceUnderTest.openOrSkip("cuda-emu:0"); Backend one = DeviceUnderTest.openOrSkip("cuda-emu:1")) {
            CudaBackend cudaOne = (CudaBackend) one;
            try (Tensor t = one.allocate(DType.F32, 4)) {
                // Device 1's compute stream (taking it makes device 1 current), then device 0 made
                // current behind CudaDevice's back and a kernel queued on device 1's stream: CUDA
                // refuses that launch, and so must the emulator, or a missing makeCurrent would
                // pass unnoticed in CI.
                MemorySegment stream = cudaOne.device().compute().handle();
                CudaRuntime runtime = CudaRuntime.loadEmulated();
                MethodHandle fill = runtime.bindStatusCall("spin_fill", ADDRESS, ADDRESS, JAVA_FLOAT, JAVA_LONG);
                runtime.setDevice(0);
                try {
                    CudaException refused = assertThrows(CudaException.class,
                            () -> runtime.check((int) fill.invokeExact(stream, t.memory(), 1f, t.size()), "spin_fill"));
                    assertTrue(refused.getMessage().contains("belongs to device 1"), refused.getMessage());
                } finally {
                    // Back to what CudaDevice believes is current on this thread.
                    runtime.setDevice(1);
                }
                assertArrayEquals(new float[4], one.read(t), "the refused fill wrote nothing");
            }
        }
    }
}
