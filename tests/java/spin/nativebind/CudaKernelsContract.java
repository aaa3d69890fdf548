package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Tier 2: each kernel against an independent fp64 (rmsnorm) or bit-level (casts) reference
 * computed here, on fresh random inputs, with every output poisoned with NaN before the launch.
 * Written once and run against each library: {@link CudaKernelsTest} on a real GPU,
 * {@link EmulatedCudaKernelsTest} on the CUDA emulator.
 */
abstract class CudaKernelsContract {
    private static final float EPS = 1e-5f;
    private static final double FP32_TOLERANCE = 1e-5;

    private CudaRuntime cuda;
    private CudaStream stream;
    private final List<DeviceMemory> allocations = new ArrayList<>();
    private final long seed = new SplittableRandom().nextLong();
    private final Random random = new Random(seed);

    /** The runtime whose kernels are under test, or an aborted (skipped) test saying why there is none. */
    abstract CudaRuntime openRuntime();

    /** Per test rather than per class, so that each test is reported as skipped with the reason. */
    @BeforeEach
    void openStream() {
        cuda = openRuntime();
        stream = cuda.createStream();
    }

    @AfterEach
    void release() {
        allocations.forEach(DeviceMemory::close);
        if (stream != null) {
            stream.close();
        }
    }

    // ------------------------------------------------------------------------------- rmsnorm

    @ParameterizedTest(name = "N={0} C={1}")
    @CsvSource({"7,1", "7,5", "8,64", "9,4096", "31,1023", "33,4095", "64,4096"})
    void rmsnormForwardMatchesFp64Reference(int rows, int columns) {
        float[] in = gaussian(rows * columns, 3.0);
        float[] weight = aroundOne(columns);
        MemorySegment out = poisoned(rows * columns);
        MemorySegment rstd = poisoned(rows);

        CudaKernels.rmsnormForward(stream, out, rstd, upload(in), upload(weight), rows, columns, EPS);

        RmsnormReference reference = RmsnormReference.forward(in, weight, rows, columns, EPS);
        assertClose(reference.out(), download(out), "out");
        assertClose(reference.rstd(), download(rstd), "rstd");
    }

    /** No C=1: there dIn = r*w*dy*eps/(x^2+eps) cancels catastrophically in fp32, whatever the kernel. */
    @ParameterizedTest(name = "N={0} C={1}")
    @CsvSource({"7,3", "7,5", "8,64", "9,4096", "31,1023", "33,4095", "64,4096"})
    void rmsnormBackwardMatchesFp64ReferenceAndAccumulatesDWeight(int rows, int columns) {
        float[] in = gaussian(rows * columns, 3.0);
        float[] weight = aroundOne(columns);
        float[] dOut = gaussian(rows * columns, 1.0);
        float[] dWeightBefore = gaussian(columns, 1.0);
        RmsnormReference reference = RmsnormReference.forward(in, weight, rows, columns, EPS);
        float[] rstd = toFloats(reference.rstd());
        MemorySegment dIn = poisoned(rows * columns);
        MemorySegment dWeight = upload(dWeightBefore);
        MemorySegment scratch = poisoned(Math.toIntExact(CudaKernels.rmsnormBackwardScratchBytes(cuda, rows, columns) / 4));

        CudaKernels.rmsnormBackward(stream, dIn, dWeight, scratch, upload(dOut), upload(in), upload(weight),
                upload(rstd), rows, columns);

        double[] expectedDIn = new double[rows * columns];
        double[] expectedDWeight = new double[columns];
        for (int c = 0; c < columns; c++) {
            expectedDWeight[c] = dWeightBefore[c];
        }
        RmsnormReference.backward(expectedDIn, expectedDWeight, dOut, in, weight, rstd, rows, columns);
        assertClose(expectedDIn, download(dIn), "dIn");
        assertClose(expectedDWeight, download(dWeight), "dWeight (accumulated onto non-zero values)");
    }

    @Test
    void rmsnormIsBitReproducible() {
        int rows = 45;
        int columns = 3001;
        float[] in = gaussian(rows * columns, 2.0);
        float[] weight = aroundOne(columns);
        float[] dOut = gaussian(rows * columns, 1.0);
        float[] dWeightBefore = gaussian(columns, 1.0);
        MemorySegment inDevice = upload(in);
        MemorySegment weightDevice = upload(weight);
        MemorySegment dOutDevice = upload(dOut);
        MemorySegment scratch = poisoned(Math.toIntExact(CudaKernels.rmsnormBackwardScratchBytes(cuda, rows, columns) / 4));
        int[][] runs = new int[2][];
        for (int run = 0; run < 2; run++) {
            MemorySegment out = poisoned(rows * columns);
            MemorySegment rstd = poisoned(rows);
            MemorySegment dIn = poisoned(rows * columns);
            MemorySegment dWeight = upload(dWeightBefore);
            CudaKernels.rmsnormForward(stream, out, rstd, inDevice, weightDevice, rows, columns, EPS);
            CudaKernels.rmsnormBackward(stream, dIn, dWeight, scratch, dOutDevice, inDevice, weightDevice, rstd,
                    rows, columns);
            runs[run] = concat(downloadBits(out), downloadBits(rstd), downloadBits(dIn), downloadBits(dWeight));
        }
        assertArrayEquals(runs[0], runs[1], "second run differs from the first (seed " + seed + ")");
    }

    // ------------------------------------------------------------------------------- casts

    @Test
    void castF32ToBf16RoundsToNearestEvenBitExactly() {
        int[] special = {
            0x00000000, 0x80000000, // signed zeros
            0x00000001, 0x80000001, 0x00007fff, 0x00008000, 0x00018000, 0x007fffff, 0x00800000, // subnormals, tiny
            0x3f808000, 0x3f818000, 0xbf808000, 0xbf818000, // exact ties: stay even / round up to even
            0x3f807fff, 0x3f808001, // just below and above a tie
            0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0xff7fffff, // near the largest finite: rounds to infinity at the tie
            0x7f800000, 0xff800000, // infinities
            0x7fc00000, 0xffc00000, 0x7f800001, 0x7f80ffff, 0xff800001, 0x7fffffff, 0x7fbfffff, // NaNs, signalling ones
        };
        int count = 4099;
        int[] bits = new int[count];
        System.arraycopy(special, 0, bits, 0, special.length);
        for (int i = special.length; i < count; i++) {
            bits[i] = switch (i % 3) {
                case 0 -> random.nextInt(); // any class: normal, subnormal, infinity, NaN
                case 1 -> (random.nextInt() & 0xffff0000) | 0x8000; // an exact tie
                default -> Float.floatToRawIntBits((float) random.nextGaussian());
            };
        }
        MemorySegment out = poisonedShorts(count);

        CudaKernels.castF32ToBf16(stream, out, uploadBits(bits), count);

        short[] actual = downloadShorts(out);
        for (int i = 0; i < count; i++) {
            short expected = roundToBf16(Float.intBitsToFloat(bits[i]));
            if (actual[i] != expected) {
                fail(String.format("f32 0x%08x -> bf16 0x%04x, expected 0x%04x (index %d, seed %d)", bits[i],
                        actual[i] & 0xffff, expected & 0xffff, i, seed));
            }
        }
    }

    @Test
    void castBf16ToF32IsExactForEveryPattern() {
        int count = 1 << 16;
        short[] patterns = new short[count];
        for (int i = 0; i < count; i++) {
            patterns[i] = (short) i;
        }
        MemorySegment out = poisoned(count);

        CudaKernels.castBf16ToF32(stream, out, uploadShorts(patterns), count);

        int[] actual = downloadBits(out);
        for (int i = 0; i < count; i++) {
            if (actual[i] != i << 16) {
                fail(String.format("bf16 0x%04x -> f32 0x%08x, expected 0x%08x", i, actual[i], i << 16));
            }
        }
    }

    // ------------------------------------------------------------------------------- memory and errors

    @Test
    void copyAndZeroMoveTheRightBytes() {
        float[] values = gaussian(1001, 1.0);
        MemorySegment source = upload(values);
        MemorySegment copy = poisoned(values.length);

        DeviceMemory.copy(stream, copy, source);
        DeviceMemory.zero(stream, source);

        assertArrayEquals(values, download(copy));
        assertArrayEquals(new float[values.length], download(source));
    }

    @Test
    void failedAllocationCarriesTheCudaErrorText() {
        CudaException e = assertThrows(CudaException.class, () -> cuda.allocate(1L << 52));
        assertEquals(CudaException.Reason.OUT_OF_MEMORY, e.reason());
        assertTrue(e.nativeMessage().startsWith(
                "cudaMalloc(4503599627370496 bytes) returned cudaErrorMemoryAllocation"), e.nativeMessage());
    }

    // ------------------------------------------------------------------------------- references

    /** Independent of the kernel: fp64 arithmetic, straightforward loops. */
    private record RmsnormReference(double[] out, double[] rstd) {
        static RmsnormReference forward(float[] in, float[] weight, int rows, int columns, float eps) {
            double[] out = new double[rows * columns];
            double[] rstd = new double[rows];
            for (int n = 0; n < rows; n++) {
                double sumSquares = 0;
                for (int c = 0; c < columns; c++) {
                    double x = in[n * columns + c];
                    sumSquares += x * x;
                }
                rstd[n] = 1.0 / Math.sqrt(sumSquares / columns + eps);
                for (int c = 0; c < columns; c++) {
                    out[n * columns + c] = in[n * columns + c] * rstd[n] * weight[c];
                }
            }
            return new RmsnormReference(out, rstd);
        }

        /** dIn overwritten, dWeight accumulated. */
        static void backward(double[] dIn, double[] dWeight, float[] dOut, float[] in, float[] weight, float[] rstd,
                int rows, int columns) {
            for (int n = 0; n < rows; n++) {
                double r = rstd[n];
                double dot = 0;
                for (int c = 0; c < columns; c++) {
                    dot += (double) dOut[n * columns + c] * weight[c] * in[n * columns + c];
                }
                for (int c = 0; c < columns; c++) {
                    int i = n * columns + c;
                    dIn[i] = r * weight[c] * dOut[i] - r * r * r * in[i] * dot / columns;
                    dWeight[c] += (double) dOut[i] * in[i] * r;
                }
            }
        }
    }

    /**
     * Round to nearest even by comparing distances to the two neighbouring bf16 values, a different
     * route from the kernel's integer trick. NaN keeps sign and upper payload and gets the quiet bit.
     */
    static short roundToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        if (Float.isInfinite(value)) {
            return (short) (bits >>> 16);
        }
        int sign = (bits >>> 16) & 0x8000;
        int below = (bits & 0x7fffffff) >>> 16;
        double magnitude = Math.abs(value);
        double distanceBelow = magnitude - bf16Magnitude(below);
        double distanceAbove = bf16Magnitude(below + 1) - magnitude;
        boolean up = distanceAbove < distanceBelow || (distanceAbove == distanceBelow && (below & 1) == 1);
        return (short) (sign | (up ? below + 1 : below));
    }

    /** The value of a bf16 magnitude pattern, with the overflow pattern read as 2^128 as IEEE rounding does. */
    private static double bf16Magnitude(int pattern) {
        return pattern == 0x7f80 ? 0x1p128 : Float.intBitsToFloat(pattern << 16);
    }

    private void assertClose(double[] expected, float[] actual, String what) {
        double error = 0;
        double norm = 0;
        for (int i = 0; i < expected.length; i++) {
            double difference = actual[i] - expected[i];
            error += difference * difference;
            norm += expected[i] * expected[i];
        }
        assertTrue(norm > 0, what + ": the reference is all zeros, which proves nothing");
        double relative = Math.sqrt(error / norm);
        assertTrue(relative < FP32_TOLERANCE,
                what + ": relative L2 error " + relative + " exceeds " + FP32_TOLERANCE + " (seed " + seed + ")");
    }

    // ------------------------------------------------------------------------------- data and transfers

    private float[] gaussian(int count, double scale) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) (random.nextGaussian() * scale);
        }
        return values;
    }

    private float[] aroundOne(int count) {
        float[] values = gaussian(count, 0.2);
        for (int i = 0; i < count; i++) {
            values[i] += 1.0f;
        }
        return values;
    }

    private static float[] toFloats(double[] values) {
        float[] floats = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            floats[i] = (float) values[i];
        }
        return floats;
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }

    private MemorySegment allocate(long bytes) {
        DeviceMemory memory = cuda.allocate(bytes);
        allocations.add(memory);
        return memory.segment();
    }

    private MemorySegment upload(float[] values) {
        return upload(arena -> arena.allocateFrom(JAVA_FLOAT, values));
    }

    private MemorySegment uploadBits(int[] values) {
        return upload(arena -> arena.allocateFrom(JAVA_INT, values));
    }

    private MemorySegment uploadShorts(short[] values) {
        return upload(arena -> arena.allocateFrom(JAVA_SHORT, values));
    }

    private MemorySegment upload(Function<Arena, MemorySegment> hostData) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = hostData.apply(arena);
            MemorySegment device = allocate(host.byteSize());
            DeviceMemory.upload(stream, device, host);
            return device;
        }
    }

    /** fp32 device memory filled with NaN, so an element the kernel fails to write shows up. */
    private MemorySegment poisoned(int count) {
        float[] nan = new float[count];
        Arrays.fill(nan, Float.NaN);
        return upload(nan);
    }

    /** bf16 device memory filled with a signalling NaN, a pattern the cast never writes (its NaNs are quiet). */
    private MemorySegment poisonedShorts(int count) {
        short[] nan = new short[count];
        Arrays.fill(nan, (short) 0x7fa5);
        return uploadShorts(nan);
    }

    private float[] download(MemorySegment device) {
        return fetch(device).toArray(JAVA_FLOAT);
    }

    /** Raw fp32 bit patterns, so NaN payloads survive the comparison. */
    private int[] downloadBits(MemorySegment device) {
        return fetch(device).toArray(JAVA_INT);
    }

    private short[] downloadShorts(MemorySegment device) {
        return fetch(device).toArray(JAVA_SHORT);
    }

    private MemorySegment fetch(MemorySegment device) {
        MemorySegment host = Arena.ofAuto().allocate(device.byteSize());
        DeviceMemory.download(stream, host, device);
        return host;
    }
}
