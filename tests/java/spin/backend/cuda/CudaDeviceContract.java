package spin.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
 * before it (the event), and the pool's counts follow allocations. {@link EmulatedCudaDeviceTest}
 * runs it in CI, {@link GpuCudaDeviceTest} on a GPU (where a missing wait would show as a race).
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
}
