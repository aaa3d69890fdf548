package spin.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceUnderTest;
import spin.backend.Tensor;
import spin.nativebind.DeviceMemory;

/**
 * The device's resources: work on the communication stream waits for the compute work queued
 * before it (the event), the pool's counts follow allocations, and uploads through the staging
 * ring land intact without the host waiting. {@link EmulatedCudaDeviceTest} runs it in CI,
 * {@link GpuCudaDeviceTest} on a GPU (where a missing wait would show as a race).
 */
abstract class CudaDeviceContract {
    /** The device spec under test. */
    abstract String spec();

    @Test
    void theCommunicationStreamSeesTheComputeWorkBeforeIt() {
        try (Backend backend = DeviceUnderTest.openOrSkip(spec())) {
            CudaBackend cuda = (CudaBackend) backend;
            int n = 1 << 20;
            try (Tensor source = cuda.allocate(DType.F32, n); Tensor copy = cuda.allocate(DType.F32, n)) {
                cuda.fill(source, 3.5f);
                DeviceMemory.copy(cuda.device().communicationAfterCompute(), copy.memory(), source.memory());
                cuda.synchronize();
                float[] expected = new float[n];
                Arrays.fill(expected, 3.5f);
                assertArrayEquals(expected, cuda.read(copy));
            }
        }
    }

    @Test
    void thePoolCountsCurrentAndPeakBytes() {
        try (Backend backend = DeviceUnderTest.openOrSkip(spec())) {
            backend.synchronize();
            long before = backend.memoryUsage().orElseThrow().currentBytes();
            backend.resetPeakMemory();
            try (Tensor big = backend.allocate(DType.F32, 1 << 20)) {
                backend.synchronize();
                var usage = backend.memoryUsage().orElseThrow();
                assertTrue(usage.currentBytes() >= before + (4L << 20), usage + " after 4 MiB more than " + before);
                assertTrue(usage.peakBytes() >= usage.currentBytes(), usage.toString());
            }
            backend.synchronize();
            assertTrue(backend.memoryUsage().orElseThrow().currentBytes() <= before, "the tensor's memory went back to the pool");
        }
    }

    /**
     * A ring's worth of uploads queued after a synchronisation does not wait, every one lands, and
     * one upload of two and a half rings (reusing each slot within the call) lands intact too;
     * reads are counted as the waits they are.
     */
    @Test
    void uploadsGoThroughTheStagingRingWithoutWaiting() {
        try (Backend backend = DeviceUnderTest.openOrSkip(spec())) {
            int small = 1000;
            Tensor[] tensors = new Tensor[StagingRing.SLOTS];
            backend.synchronize();
            long before = backend.hostSynchronizations().orElseThrow();
            for (int i = 0; i < tensors.length; i++) {
                tensors[i] = backend.fromHost(pattern(small, i), small);
            }
            assertEquals(before, backend.hostSynchronizations().orElseThrow(), "uploads made the host wait");
            for (int i = 0; i < tensors.length; i++) {
                assertArrayEquals(pattern(small, i), backend.read(tensors[i]), "upload " + i);
                tensors[i].close();
            }
            assertEquals(before + tensors.length, backend.hostSynchronizations().orElseThrow(), "one wait per read");
            int large = Math.toIntExact(5 * StagingRing.SLOTS * StagingRing.SLOT_BYTES / 2 / Float.BYTES + 7);
            try (Tensor t = backend.fromHost(pattern(large, -1), large)) {
                assertArrayEquals(pattern(large, -1), backend.read(t));
            }
        }
    }

    /** Values that differ between uploads and along each one, so a piece landing in the wrong place shows. */
    private static float[] pattern(int n, int upload) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = upload * 1000f + i;
        }
        return values;
    }
}
