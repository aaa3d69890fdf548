package spin.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import spin.backend.cpu.CpuBackend;

/**
 * Tier 2: every Backend op on a device against the CPU backend (the fp32 reference, itself checked
 * by finite differences and an fp64 reference in CpuOpsTest), on fresh random inputs: forward and
 * backward, odd shapes, masks with holes, grouped-query attention, windows shorter than T. Written
 * once; each device tier extends it ({@link EmulatedBackendTest} on {@code cuda-emu} in CI,
 * {@link GpuBackendTest} on a real GPU).
 *
 * <p>Where the device computes in BF16 ({@link Backend#computeTypes()}), the {@code bf16} cases run
 * each op on BF16 activations against the CPU's fp32 result on the same (bf16-valued) inputs, by
 * DESIGN section 4's rule ({@link #sameBf16}).
 *
 * <p>Outputs are compared element by element, |device - cpu| <= atol + rtol * |cpu|, with atol a
 * fraction of the reference's largest magnitude: both compute in fp32 and differ only in
 * summation order. Device outputs start as NaN, so an element an op fails to write fails.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class BackendContract {
    private static final float RTOL = 2e-4f;
    private static final float ATOL = 1e-5f;

    private Backend device;
    private CpuBackend cpu;
    private final List<Tensor> tensors = new ArrayList<>();
    private final long seed = new SplittableRandom().nextLong();
    private SplittableRandom random;

    /** The device under test, or an aborted (skipped) test saying why it cannot be opened. */
    abstract Backend openDevice();

    @BeforeAll
    void open() {
        cpu = new CpuBackend(2);
    }

    @BeforeEach
    void openDeviceAndSeed() {
        if (device == null) {
            device = openDevice();
        }
        random = new SplittableRandom(seed);
    }

    @AfterEach
    void release() {
        tensors.forEach(Tensor::close);
        tensors.clear();
    }

    @AfterAll
    void close() {
        if (device != null) {
            device.close();
        }
        cpu.close();
    }

    // ------------------------------------------------------------------------------ memory

    @Test
    void writeReadAndCopyRoundTripEveryDtype() {
        float[] values = floats(1000, 3f);
        Tensor f = track(device.fromHost(values, 10, 100));
        assertArrayEquals(values, device.read(f));
        Tensor copy = track(device.allocate(DType.F32, 1000));
        device.copy(copy, f);
        assertArrayEquals(values, device.read(copy));
        Tensor bf16 = track(device.allocate(DType.BF16, 1000));
        device.write(bf16, values);
        float[] rounded = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            rounded[i] = BFloat16.toFloat(BFloat16.fromFloat(values[i]));
        }
        assertArrayEquals(rounded, device.read(bf16));
        int[] ints = random.ints(77, -5, 1000).toArray();
        assertArrayEquals(ints, device.readInts(track(device.fromHost(ints, 7, 11))));
        assertArrayEquals(new float[6], device.read(track(device.allocate(DType.F32, 2, 3))), "allocate zeroes");
        assertEquals(0, device.read(track(device.allocate(DType.F32, 0))).length);
    }

    @Test
    void storedBytesUploadInTheirDtypeAndWidenOnTheBackend() {
        int n = 1027;
        float[] values = floats(n, 5f);
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            var le = java.nio.ByteOrder.LITTLE_ENDIAN;
            var f32 = arena.allocate((long) n * 4);
            var bf16 = arena.allocate((long) n * 2);
            for (int i = 0; i < n; i++) {
                f32.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(le), i, values[i]);
                bf16.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(le), i, BFloat16.fromFloat(values[i]));
            }
            exact("upload F32 into F32", n, (be, out) -> be.upload(out.get(), f32, DType.F32));
            float[] widened = run(device, n, (be, out) -> be.upload(out.get(), bf16, DType.BF16));
            for (int i = 0; i < n; i++) {
                assertEquals(BFloat16.toFloat(BFloat16.fromFloat(values[i])), widened[i], "element " + i);
            }
            Tensor kept = track(device.allocate(DType.BF16, n));
            device.upload(kept, bf16, DType.BF16);
            assertArrayEquals(widened, device.read(kept));
            // F32 bytes into a BF16 tensor round as cast rounds (an inference model's load).
            for (Backend be : new Backend[] {cpu, device}) {
                Tensor rounded = track(be.allocate(DType.BF16, n)), cast = track(be.allocate(DType.BF16, n));
                be.upload(rounded, f32, DType.F32);
                be.cast(cast, track(be.fromHost(values, n)));
                assertArrayEquals(be.read(cast), be.read(rounded), "upload F32 into BF16 on " + be.name());
                assertArrayEquals(widened, be.read(rounded), "round to nearest even on " + be.name());
            }
            assertThrows(IllegalArgumentException.class, () -> device.upload(kept, f32.asSlice(0, 8), DType.F32));
        }
    }

    @Test
    void aTensorOfAnotherBackendIsAClearError() {
        Tensor onCpu = track(cpu.fromHost(floats(4, 1f), 4));
        Tensor onDevice = track(device.allocate(DType.F32, 4));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.add(onDevice, onDevice, onCpu));
        assertTrue(e.getMessage().contains(cpu.name()) && e.getMessage().contains(device.name()), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cpu.read(onDevice));
    }

    // ------------------------------------------------------------------------------ element-wise

    @Test
    void elementwiseOps() {
        int n = 70_001;
        float[] a = floats(n, 2f), b = floats(n, 2f);
        same("add", n, (be, out) -> be.add(out.get(), be.fromHost(a, n), be.fromHost(b, n)));
        same("accumulate", n, (be, out) -> {
            be.copy(out.get(), be.fromHost(a, n));
            be.accumulate(out.get(), be.fromHost(b, n));
        });
        same("scale", n, (be, out) -> {
            be.copy(out.get(), be.fromHost(a, n));
            be.scale(out.get(), -0.37f);
        });
        same("fill", n, (be, out) -> be.fill(out.get(), 1.25f));
    }

    @Test
    void elementwiseOnBf16Activations() {
        requireBf16();
        int n = 70_001;
        float[] a = bf16Floats(n, 2f), b = bf16Floats(n, 2f);
        sameBf16("add", n, true, 2, (be, act, out) -> be.add(out.get(), input(be, act, a, n), input(be, act, b, n)));
        sameBf16("accumulate", n, true, 2, (be, act, out) -> {
            be.copy(out.get(), input(be, act, a, n));
            be.accumulate(out.get(), input(be, act, b, n));
        });
    }

    @ParameterizedTest
    @CsvSource({"1", "255", "4099"})
    void castsRoundToNearestEvenBothWays(int n) {
        float[] values = floats(n, 100f);
        values[0] = Float.NaN;
        Tensor in = track(device.fromHost(values, n));
        Tensor bf16 = track(device.allocate(DType.BF16, n));
        Tensor back = track(device.allocate(DType.F32, n));
        device.cast(bf16, in);
        device.cast(back, bf16);
        Tensor cpuBf16 = track(cpu.allocate(DType.BF16, n));
        cpu.cast(cpuBf16, track(cpu.fromHost(values, n)));
        assertArrayEquals(cpu.read(cpuBf16), device.read(back));
    }

    // ------------------------------------------------------------------------------ embedding, linear, norm

    @Test
    void embeddingForwardAndDeterministicBackward() {
        int v = 37, c = 19, n = 45;
        float[] table = floats(v * c, 1f), dOut = floats(n * c, 1f), dTableBefore = floats(v * c, 1f);
        int[] ids = random.ints(n, 0, 5).toArray(); // many repeats
        ids[3] = v - 1;
        same("embeddingForward", n * c, (be, out) -> be.embeddingForward(out.get(), be.fromHost(ids, n), be.fromHost(table, v, c)));
        float[] first = same("embeddingBackward", v * c, (be, out) -> {
            be.write(out.get(), dTableBefore);
            be.embeddingBackward(out.get().reshape(v, c), be.fromHost(ids, n), be.fromHost(dOut, n, c));
        });
        float[] again = run(device, v * c, (be, out) -> {
            be.write(out.get(), dTableBefore);
            be.embeddingBackward(out.get().reshape(v, c), be.fromHost(ids, n), be.fromHost(dOut, n, c));
        });
        assertArrayEquals(first, again, "embedding backward is deterministic");
    }

    @Test
    void embeddingOnBf16Activations() {
        requireBf16();
        int v = 37, c = 19, n = 45;
        float[] table = bf16Floats(v * c, 1f), dOut = bf16Floats(n * c, 1f), dTableBefore = floats(v * c, 1f);
        int[] ids = random.ints(n, 0, 5).toArray(); // many repeats
        ids[3] = v - 1;
        sameBf16("embeddingForward", n * c, true, 2, (be, act, out) -> be.embeddingForward(out.get(),
                be.fromHost(ids, n), input(be, act, table, v, c)));
        sameBf16("embeddingBackward dTable", v * c, false, 3, (be, act, out) -> {
            be.write(out.get(), dTableBefore);
            be.embeddingBackward(out.get().reshape(v, c), be.fromHost(ids, n), input(be, act, dOut, n, c));
        });
    }

    @ParameterizedTest
    @CsvSource({"1,1,1", "7,5,3", "33,17,65", "64,128,96"})
    void matmulForwardAndBackward(int n, int o, int i) {
        float[] in = floats(n * i, 1f), w = floats(o * i, 1f), dOut = floats(n * o, 1f), dWBefore = floats(o * i, 1f);
        same("matmulForward", n * o, (be, out) -> be.matmulForward(out.get(), be.fromHost(in, n, i), be.fromHost(w, o, i)));
        same("matmulBackward dIn", n * i, (be, out) -> be.matmulBackward(out.get(), be.allocate(DType.F32, o, i),
                be.fromHost(dOut, n, o), be.fromHost(in, n, i), be.fromHost(w, o, i)));
        same("matmulBackward dWeight", o * i, (be, out) -> {
            be.write(out.get(), dWBefore);
            be.matmulBackward(null, out.get(), be.fromHost(dOut, n, o), be.fromHost(in, n, i), be.fromHost(w, o, i));
        });
    }

    /**
     * BF16 operands; out BF16 or F32 (the lm_head's logits), dWeight F32. An F32 result is held to
     * the fp32 tolerance against the CPU's fp32 product of the same bf16 values: both sum exact
     * products of bf16 numbers in fp32, in different orders.
     */
    @ParameterizedTest
    @CsvSource({"1,1,1", "7,5,3", "33,17,65", "64,128,96"})
    void matmulOnBf16Activations(int n, int o, int i) {
        requireBf16();
        float[] in = bf16Floats(n * i, 1f), w = bf16Floats(o * i, 1f), dOut = bf16Floats(n * o, 1f);
        float[] dWBefore = floats(o * i, 1f);
        for (boolean bf16Out : new boolean[] {true, false}) {
            sameBf16(bf16Out ? "matmulForward" : "matmulForward F32 out", n * o, bf16Out, 2, (be, act, out) ->
                    be.matmulForward(out.get(), input(be, act, in, n, i), input(be, act, w, o, i)));
        }
        sameBf16("matmulBackward dIn", n * i, true, 3, (be, act, out) -> be.matmulBackward(out.get(),
                be.allocate(DType.F32, o, i), input(be, act, dOut, n, o), input(be, act, in, n, i), input(be, act, w, o, i)));
        sameBf16("matmulBackward dWeight", o * i, false, 3, (be, act, out) -> {
            be.write(out.get(), dWBefore);
            be.matmulBackward(null, out.get(), input(be, act, dOut, n, o), input(be, act, in, n, i), input(be, act, w, o, i));
        });
    }

    /** Activations of one op share one dtype; parameter gradients, logits and statistics stay F32. */
    @Test
    void mixedComputeDtypesAreRefused() {
        requireBf16();
        Tensor f = track(device.allocate(DType.F32, 2, 2)), h = track(device.allocate(DType.BF16, 2, 2));
        Tensor ids = track(device.fromHost(new int[] {0, 1}, 2)), rows = track(device.allocate(DType.F32, 2));
        assertThrows(IllegalArgumentException.class, () -> device.add(h, f, h));
        assertThrows(IllegalArgumentException.class, () -> device.matmulForward(h, f, f), "F32 inputs, BF16 out");
        assertThrows(IllegalArgumentException.class, () -> device.matmulBackward(null, h, h, h, h), "BF16 dWeight");
        assertThrows(IllegalArgumentException.class, () -> device.embeddingBackward(h, ids, h), "BF16 dTable");
        assertThrows(IllegalArgumentException.class, () -> device.swigluForward(h, h, f));
        assertThrows(IllegalArgumentException.class, () -> device.logprobBackward(h, rows, h, ids, rows), "BF16 logits");
    }

    @ParameterizedTest
    @CsvSource({"1,3", "9,300", "17,1023"})
    void rmsnormForwardAndBackward(int n, int c) {
        float[] in = floats(n * c, 3f), w = floats(c, 1f), dOut = floats(n * c, 1f), dWBefore = floats(c, 1f);
        float eps = 1e-5f;
        same("rmsnormForward out", n * c, (be, out) -> be.rmsnormForward(out.get(), be.allocate(DType.F32, n),
                be.fromHost(in, n, c), be.fromHost(w, c), eps));
        same("rmsnormForward rstd", n, (be, out) -> be.rmsnormForward(be.allocate(DType.F32, n, c), out.get(),
                be.fromHost(in, n, c), be.fromHost(w, c), eps));
        for (boolean input : new boolean[] {true, false}) {
            same(input ? "rmsnormBackward dIn" : "rmsnormBackward dWeight", input ? n * c : c, (be, out) -> {
                Tensor x = be.fromHost(in, n, c), weight = be.fromHost(w, c), rstd = be.allocate(DType.F32, n);
                be.rmsnormForward(be.allocate(DType.F32, n, c), rstd, x, weight, eps);
                Tensor dIn = input ? out.get() : be.allocate(DType.F32, n, c);
                Tensor dWeight = input ? be.allocate(DType.F32, c) : out.get();
                if (!input) {
                    be.write(dWeight, dWBefore);
                }
                be.rmsnormBackward(dIn, dWeight, be.fromHost(dOut, n, c), x, weight, rstd);
            });
        }
    }

    @ParameterizedTest
    @CsvSource({"1,3", "9,300", "17,1023"})
    void rmsnormOnBf16Activations(int n, int c) {
        requireBf16();
        float[] in = bf16Floats(n * c, 3f), w = bf16Floats(c, 1f), dOut = bf16Floats(n * c, 1f), dWBefore = floats(c, 1f);
        float eps = 1e-5f;
        sameBf16("rmsnormForward out", n * c, true, 2, (be, act, out) -> be.rmsnormForward(out.get(),
                be.allocate(DType.F32, n), input(be, act, in, n, c), input(be, act, w, c), eps));
        sameBf16("rmsnormForward rstd", n, false, 2, (be, act, out) -> be.rmsnormForward(be.allocate(act, n, c), out.get(),
                input(be, act, in, n, c), input(be, act, w, c), eps));
        for (boolean dIn : new boolean[] {true, false}) {
            sameBf16(dIn ? "rmsnormBackward dIn" : "rmsnormBackward dWeight", dIn ? n * c : c, dIn, 3, (be, act, out) -> {
                Tensor x = input(be, act, in, n, c), weight = input(be, act, w, c), rstd = be.allocate(DType.F32, n);
                be.rmsnormForward(be.allocate(act, n, c), rstd, x, weight, eps);
                Tensor dWeight = dIn ? be.fromHost(dWBefore, c) : out.get();
                if (!dIn) {
                    be.write(dWeight, dWBefore);
                }
                be.rmsnormBackward(dIn ? out.get() : be.allocate(act, n, c), dWeight, input(be, act, dOut, n, c), x, weight,
                        rstd);
            });
        }
    }

    /**
     * The fused residual add + norm against its unfused twin on the same backend, bit for bit, on the
     * CPU and on the device, in each dtype the backend computes in: into a separate sum and in place
     * (sum == a, as the model updates the residual stream).
     */
    @ParameterizedTest
    @CsvSource({"1,3,F32", "9,300,F32", "17,1023,F32", "7,5,BF16", "9,300,BF16", "17,1023,BF16"})
    void addRmsnormIsBitForBitAddThenRmsnorm(int n, int c, DType act) {
        float[] a = bf16Floats(n * c, 3f), b = bf16Floats(n * c, 3f), w = bf16Floats(c, 1f);
        float eps = 1e-5f;
        int checked = 0;
        for (Backend be : List.of(cpu, device)) {
            if (!be.computeTypes().contains(act)) {
                continue;
            }
            for (boolean inPlace : new boolean[] {false, true}) {
                Tensor[] unfused = addThenNorm(be, act, a, b, w, n, c, eps, false, inPlace);
                Tensor[] fused = addThenNorm(be, act, a, b, w, n, c, eps, true, inPlace);
                String[] names = {"sum", "normed", "rstd"};
                for (int k = 0; k < names.length; k++) {
                    assertSameBits(be.read(unfused[k]), be.read(fused[k]), "addRmsnormForward " + names[k]
                            + (inPlace ? " (sum == a)" : "") + " " + act + " on " + be.name(), "add + rmsnormForward");
                }
            }
            checked++;
        }
        assumeTrue(checked > 0, "no backend computes in " + act);
        Tensor x = track(device.allocate(DType.F32, 2, 4)), r = track(device.allocate(DType.F32, 2));
        Tensor weight = track(device.allocate(DType.F32, 4));
        assertThrows(IllegalArgumentException.class, () -> device.addRmsnormForward(x, x, r, x, x, weight, eps),
                "normed aliasing the sum");
    }

    /** {sum, normed, rstd} of add + rmsnormForward ({@code fused} false) or addRmsnormForward, tracked. */
    private Tensor[] addThenNorm(Backend be, DType act, float[] a, float[] b, float[] w, int n, int c, float eps,
            boolean fused, boolean inPlace) {
        Tensor x = track(input(be, act, a, n, c)), y = track(input(be, act, b, n, c)), weight = track(input(be, act, w, c));
        Tensor sum = inPlace ? x : track(be.allocate(act, n, c)), normed = track(be.allocate(act, n, c));
        Tensor rstd = track(be.allocate(DType.F32, n));
        if (fused) {
            be.addRmsnormForward(sum, normed, rstd, x, y, weight, eps);
        } else {
            be.add(sum, x, y);
            be.rmsnormForward(normed, rstd, sum, weight, eps);
        }
        return new Tensor[] {sum, normed, rstd};
    }

    /**
     * RoPE fused with the stacked q/k/v split against its unfused twin, bit for bit, on the CPU and
     * on the device in each dtype it computes in: forward, the parts copied out and then
     * {@code ropeForward} on q and on k (v exact); backward, {@code ropeBackward} of dq and of dk
     * merged beside dv, dq/dk/dv left as they were. Outputs start as NaN, so a skipped element
     * fails (GQA: k and v have fewer heads; a negative position takes the CPU's path outside its
     * angle table).
     */
    @ParameterizedTest
    @CsvSource({"1,1,1,1,2,F32", "2,5,4,2,8,F32", "2,7,3,3,130,F32", "2,5,4,2,8,BF16", "2,7,3,1,130,BF16"})
    void qkvRopeIsBitForBitTheSplitThenRope(int b, int t, int h, int kvh, int d, DType act) {
        int rows = b * t, width = (h + 2 * kvh) * d, qRow = h * d, kvRow = kvh * d;
        float[] qkv = bf16Floats(rows * width, 1f);
        float[] dq = bf16Floats(rows * qRow, 1f), dk = bf16Floats(rows * kvRow, 1f), dv = bf16Floats(rows * kvRow, 1f);
        int[] positions = random.ints(rows, 0, 5000).toArray();
        positions[positions.length - 1] = -3;
        float theta = 10000f;
        for (Backend be : List.of(cpu, device)) {
            if (!be.computeTypes().contains(act)) {
                continue;
            }
            Tensor pos = track(be.fromHost(positions, b, t));
            // Forward.
            Tensor stacked = track(input(be, act, qkv, rows, width));
            Tensor q = track(be.allocate(act, b, t, h, d)), k = track(be.allocate(act, b, t, kvh, d)),
                    v = track(be.allocate(act, b, t, kvh, d));
            for (Tensor out : List.of(q, k, v)) {
                poison(be, out);
            }
            be.qkvRopeForward(q, k, v, stacked, pos, theta);
            Tensor qTwin = track(input(be, act, columns(qkv, width, 0, qRow), b, t, h, d));
            Tensor kTwin = track(input(be, act, columns(qkv, width, qRow, kvRow), b, t, kvh, d));
            be.ropeForward(qTwin, qTwin, pos, theta);
            be.ropeForward(kTwin, kTwin, pos, theta);
            String fwd = "qkvRopeForward " + act + " on " + be.name();
            assertSameBits(be.read(qTwin), be.read(q), fwd + ", q", "the split, then ropeForward");
            assertSameBits(be.read(kTwin), be.read(k), fwd + ", k", "the split, then ropeForward");
            assertSameBits(columns(qkv, width, qRow + kvRow, kvRow), be.read(v), fwd + ", v", "the split, then ropeForward");
            // Backward.
            Tensor dqT = track(input(be, act, dq, b, t, h, d)), dkT = track(input(be, act, dk, b, t, kvh, d)),
                    dvT = track(input(be, act, dv, b, t, kvh, d));
            Tensor dStacked = track(be.allocate(act, rows, width));
            poison(be, dStacked);
            be.qkvRopeBackward(dStacked, dqT, dkT, dvT, pos, theta);
            Tensor dqTwin = track(be.allocate(act, b, t, h, d)), dkTwin = track(be.allocate(act, b, t, kvh, d));
            be.ropeBackward(dqTwin, dqT, pos, theta);
            be.ropeBackward(dkTwin, dkT, pos, theta);
            float[] expected = new float[rows * width];
            putColumns(expected, width, 0, qRow, be.read(dqTwin));
            putColumns(expected, width, qRow, kvRow, be.read(dkTwin));
            putColumns(expected, width, qRow + kvRow, kvRow, dv);
            String bwd = "qkvRopeBackward " + act + " on " + be.name();
            assertSameBits(expected, be.read(dStacked), bwd, "ropeBackward, then the merge");
            assertSameBits(dq, be.read(dqT), bwd + ", dq afterwards", "its input");
            assertSameBits(dk, be.read(dkT), bwd + ", dk afterwards", "its input");
            assertSameBits(dv, be.read(dvT), bwd + ", dv afterwards", "its input");
        }
    }

    /** Columns [at, at + count) of each row of the [rows, width] {@code matrix}, as a [rows, count] array. */
    private static float[] columns(float[] matrix, int width, int at, int count) {
        int rows = matrix.length / width;
        float[] out = new float[rows * count];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(matrix, r * width + at, out, r * count, count);
        }
        return out;
    }

    /** Writes the [rows, count] {@code part} into columns [at, at + count) of the [rows, width] {@code matrix}. */
    private static void putColumns(float[] matrix, int width, int at, int count, float[] part) {
        for (int r = 0; r < part.length / count; r++) {
            System.arraycopy(part, r * count, matrix, r * width + at, count);
        }
    }

    /** Fails naming the first element whose bits differ: {@code what} is the result, {@code from} where the expected bits come from. */
    private void assertSameBits(float[] expected, float[] actual, String what, String from) {
        assertEquals(expected.length, actual.length, what + ": element count");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", " + expected[i] + " from " + from + " (seed " + seed
                        + ")");
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1,1,1,2", "2,5,3,8", "2,7,4,24"})
    void ropeForwardAndBackwardInPlace(int b, int t, int h, int d) {
        float[] in = floats(b * t * h * d, 1f);
        int[] positions = random.ints(b * t, 0, 5000).toArray();
        float theta = 10000f;
        same("ropeForward", b * t * h * d, (be, out) -> be.ropeForward(out.get(), be.fromHost(in, b, t, h, d),
                be.fromHost(positions, b, t), theta));
        same("ropeBackward in place", b * t * h * d, (be, out) -> {
            be.write(out.get(), in);
            Tensor x = out.get().reshape(b, t, h, d);
            be.ropeBackward(x, x, be.fromHost(positions, b, t), theta);
        });
    }

    @ParameterizedTest
    @CsvSource({"1,1,1,2", "2,5,3,8", "2,7,4,24"})
    void ropeOnBf16Activations(int b, int t, int h, int d) {
        requireBf16();
        int size = b * t * h * d;
        float[] in = bf16Floats(size, 1f);
        int[] positions = random.ints(b * t, 0, 5000).toArray();
        float theta = 10000f;
        sameBf16("ropeForward", size, true, 2, (be, act, out) -> be.ropeForward(out.get(), input(be, act, in, b, t, h, d),
                be.fromHost(positions, b, t), theta));
        sameBf16("ropeBackward in place", size, true, 3, (be, act, out) -> {
            be.write(out.get(), in);
            Tensor x = out.get().reshape(b, t, h, d);
            be.ropeBackward(x, x, be.fromHost(positions, b, t), theta);
        });
    }

    // ------------------------------------------------------------------------------ attention

    @ParameterizedTest
    @CsvSource({"2,5,4,2,8,0", "2,37,4,2,24,0", "1,19,2,2,16,3", "2,70,4,1,8,5", "1,1,1,1,8,0"})
    void attentionForwardAndBackward(int b, int t, int h, int kvh, int d, int window) {
        float[] q = floats(b * t * h * d, 1.5f), k = floats(b * t * kvh * d, 1.5f), v = floats(b * t * kvh * d, 1f);
        float[] dOut = floats(b * t * h * d, 1f);
        int[] mask = new int[b * t];
        for (int i = 0; i < mask.length; i++) {
            mask[i] = random.nextInt(4) == 0 ? 0 : 1;
        }
        mask[0] = 0; // query 0 of sequence 0 sees no key
        record Inputs(Tensor q, Tensor k, Tensor v, Tensor mask, Tensor out, Tensor lse) {}
        java.util.function.Function<Backend, Inputs> forward = be -> {
            Inputs in = new Inputs(be.fromHost(q, b, t, h, d), be.fromHost(k, b, t, kvh, d), be.fromHost(v, b, t, kvh, d),
                    be.fromHost(mask, b, t), be.allocate(DType.F32, b, t, h, d), be.allocate(DType.F32, b, h, t));
            be.attentionForward(in.out, in.lse, in.q, in.k, in.v, in.mask, window);
            return in;
        };
        same("attentionForward out", b * t * h * d, (be, out) -> be.copy(out.get(), forward.apply(be).out));
        same("attentionForward lse", b * h * t, (be, out) -> be.copy(out.get(), forward.apply(be).lse));
        String[] names = {"dq", "dk", "dv"};
        for (int which = 0; which < 3; which++) {
            int w = which;
            int size = w == 0 ? q.length : k.length;
            same("attentionBackward " + names[w], size, (be, out) -> {
                Inputs in = forward.apply(be);
                Tensor[] grads = {be.allocate(DType.F32, b, t, h, d), be.allocate(DType.F32, b, t, kvh, d),
                        be.allocate(DType.F32, b, t, kvh, d)};
                be.attentionBackward(grads[0], grads[1], grads[2], be.fromHost(dOut, b, t, h, d), in.q, in.k, in.v,
                        in.mask, in.out, in.lse, window);
                be.copy(out.get(), grads[w].reshape(size));
            });
        }
    }

    @ParameterizedTest
    @CsvSource({"4,2,8,0", "2,2,24,3"})
    void cachedAttentionOverAPagedCacheAndScatteredRows(int h, int kvh, int d, int window) {
        int blockSize = 4, blocks = 6, rows = blocks * blockSize;
        int[] blockTable = {4, 1, 5, /* sequence 1: */ 0, 3, 2};
        int[] querySeq = {0, 1, 1, 0};
        int[] queryPos = {9, 2, 11, 3};
        float[] kCache = floats(rows * kvh * d, 1.5f), vCache = floats(rows * kvh * d, 1f), q = floats(4 * h * d, 1.5f);
        float[] newRows = floats(3 * kvh * d, 1f);
        int[] scatterTo = {22, 5, 13};
        same("scatterRows", rows * kvh * d, (be, out) -> {
            be.write(out.get(), kCache);
            be.scatterRows(out.get().reshape(rows, kvh * d), be.fromHost(newRows, 3, kvh * d), be.fromHost(scatterTo, 3));
        });
        same("attentionCachedForward", 4 * h * d, (be, out) -> be.attentionCachedForward(out.get().reshape(4, h, d),
                be.fromHost(q, 4, h, d), be.fromHost(kCache, rows, kvh, d), be.fromHost(vCache, rows, kvh, d),
                be.fromHost(blockTable, 2, 3), be.fromHost(querySeq, 4), be.fromHost(queryPos, 4), blockSize, window));
    }

    @ParameterizedTest
    @CsvSource({"2,5,4,2,8,0", "2,37,4,2,24,0", "1,19,2,2,16,3", "2,70,4,1,8,5"})
    void attentionOnBf16Activations(int b, int t, int h, int kvh, int d, int window) {
        requireBf16();
        float[] q = bf16Floats(b * t * h * d, 1.5f), k = bf16Floats(b * t * kvh * d, 1.5f);
        float[] v = bf16Floats(b * t * kvh * d, 1f), dOut = bf16Floats(b * t * h * d, 1f);
        int[] mask = new int[b * t];
        for (int i = 0; i < mask.length; i++) {
            mask[i] = random.nextInt(4) == 0 ? 0 : 1;
        }
        mask[0] = 0; // query 0 of sequence 0 sees no key
        record Inputs(Tensor q, Tensor k, Tensor v, Tensor mask) {}
        java.util.function.BiFunction<Backend, DType, Inputs> inputs = (be, act) -> new Inputs(
                input(be, act, q, b, t, h, d), input(be, act, k, b, t, kvh, d), input(be, act, v, b, t, kvh, d),
                be.fromHost(mask, b, t));
        float[] out = sameBf16("attentionForward out", b * t * h * d, true, 2, (be, act, o) -> {
            Inputs in = inputs.apply(be, act);
            be.attentionForward(o.get().reshape(b, t, h, d), be.allocate(DType.F32, b, h, t), in.q, in.k, in.v, in.mask,
                    window);
        });
        float[] lse = sameBf16("attentionForward lse", b * h * t, false, 2, (be, act, o) -> {
            Inputs in = inputs.apply(be, act);
            be.attentionForward(be.allocate(act, b, t, h, d), o.get().reshape(b, h, t), in.q, in.k, in.v, in.mask, window);
        });
        // Both backends run the backward on the device's forward (out in bf16, lse): the row term
        // dOut . out is taken over the out given, whose rounding would otherwise be charged to the
        // backward (tests/cuda/attention_test.cu measures it).
        int[][] shapes = {{b, t, h, d}, {b, t, kvh, d}, {b, t, kvh, d}};
        String[] names = {"dq", "dk", "dv"};
        for (int which = 0; which < 3; which++) {
            int w = which;
            sameBf16("attentionBackward " + names[w], w == 0 ? q.length : k.length, true, 3, (be, act, o) -> {
                Inputs in = inputs.apply(be, act);
                Tensor[] grads = new Tensor[3];
                for (int g = 0; g < 3; g++) {
                    grads[g] = g == w ? o.get().reshape(shapes[g]) : be.allocate(act, shapes[g]);
                }
                be.attentionBackward(grads[0], grads[1], grads[2], input(be, act, dOut, b, t, h, d), in.q, in.k, in.v,
                        in.mask, input(be, act, out, b, t, h, d), be.fromHost(lse, b, h, t), window);
            });
        }
        Inputs mixed = inputs.apply(TrackingBackend.of(device, tensors), DType.BF16);
        Tensor kF32 = track(device.fromHost(k, b, t, kvh, d));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.attentionForward(
                track(device.allocate(DType.BF16, b, t, h, d)), track(device.allocate(DType.F32, b, h, t)), mixed.q, kF32,
                mixed.v, mixed.mask, window));
        assertTrue(e.getMessage().contains("compute dtype"), e.getMessage());
    }

    @ParameterizedTest
    @CsvSource({"4,2,8,0", "2,2,24,3"})
    void cachedAttentionAndScatteredRowsOnBf16Activations(int h, int kvh, int d, int window) {
        requireBf16();
        int blockSize = 4, blocks = 6, rows = blocks * blockSize;
        int[] blockTable = {4, 1, 5, /* sequence 1: */ 0, 3, 2};
        int[] querySeq = {0, 1, 1, 0};
        int[] queryPos = {9, 2, 11, 3};
        float[] kCache = bf16Floats(rows * kvh * d, 1.5f), vCache = bf16Floats(rows * kvh * d, 1f);
        float[] q = bf16Floats(4 * h * d, 1.5f), newRows = bf16Floats(3 * kvh * d, 1f);
        int[] scatterTo = {22, 5, 13};
        TypedOp scatter = (be, act, out) -> {
            be.write(out.get(), kCache);
            be.scatterRows(out.get().reshape(rows, kvh * d), input(be, act, newRows, 3, kvh * d),
                    be.fromHost(scatterTo, 3));
        };
        float[] expected = run(cpu, rows * kvh * d, DType.F32, (be, out) -> scatter.run(be, DType.F32, out));
        float[] actual = run(device, rows * kvh * d, DType.BF16, (be, out) -> scatter.run(be, DType.BF16, out));
        assertArrayEquals(expected, actual, "scatterRows (bf16) copies rows as they are");
        sameBf16("attentionCachedForward", 4 * h * d, true, 2, (be, act, out) -> be.attentionCachedForward(
                out.get().reshape(4, h, d), input(be, act, q, 4, h, d), input(be, act, kCache, rows, kvh, d),
                input(be, act, vCache, rows, kvh, d), be.fromHost(blockTable, 2, 3), be.fromHost(querySeq, 4),
                be.fromHost(queryPos, 4), blockSize, window));
        Tensor bf16Cache = track(cpu.allocate(DType.BF16, rows, kvh, d)), cpuOut = track(cpu.allocate(DType.F32, 4, h, d));
        Tensor cpuQ = track(cpu.fromHost(q, 4, h, d)), table = track(cpu.fromHost(blockTable, 2, 3));
        Tensor seqs = track(cpu.fromHost(querySeq, 4)), positions = track(cpu.fromHost(queryPos, 4));
        assertThrows(IllegalArgumentException.class, () -> cpu.attentionCachedForward(cpuOut, cpuQ, bf16Cache, bf16Cache,
                table, seqs, positions, blockSize, window), "the CPU backend computes in fp32 and refuses a BF16 cache");
    }

    // ------------------------------------------------------------------------------ MLP, log-probs, losses

    @Test
    void swigluForwardAndBackward() {
        int n = 3001;
        float[] gate = floats(n, 4f), up = floats(n, 2f), dOut = floats(n, 1f);
        same("swigluForward", n, (be, out) -> be.swigluForward(out.get(), be.fromHost(gate, n), be.fromHost(up, n)));
        for (boolean dGate : new boolean[] {true, false}) {
            same(dGate ? "swigluBackward dGate" : "swigluBackward dUp", n, (be, out) -> {
                Tensor other = be.allocate(DType.F32, n);
                be.swigluBackward(dGate ? out.get() : other, dGate ? other : out.get(), be.fromHost(dOut, n),
                        be.fromHost(gate, n), be.fromHost(up, n));
            });
        }
    }

    @Test
    void swigluOnBf16Activations() {
        requireBf16();
        int n = 3001;
        float[] gate = bf16Floats(n, 4f), up = bf16Floats(n, 2f), dOut = bf16Floats(n, 1f);
        sameBf16("swigluForward", n, true, 2, (be, act, out) -> be.swigluForward(out.get(), input(be, act, gate, n),
                input(be, act, up, n)));
        for (boolean dGate : new boolean[] {true, false}) {
            sameBf16(dGate ? "swigluBackward dGate" : "swigluBackward dUp", n, true, 3, (be, act, out) -> {
                Tensor other = be.allocate(act, n);
                be.swigluBackward(dGate ? out.get() : other, dGate ? other : out.get(), input(be, act, dOut, n),
                        input(be, act, gate, n), input(be, act, up, n));
            });
        }
    }

    @ParameterizedTest
    @CsvSource({"1,5", "9,300", "3,32000"})
    void logprobForwardAndBackwardInPlace(int n, int v) {
        float[] logits = floats(n * v, 8f), dLogp = floats(n, 1f);
        int[] labels = random.ints(n, 0, v).toArray();
        labels[n - 1] = Backend.IGNORE_INDEX;
        logits[0] = Float.NEGATIVE_INFINITY; // a masked-out token: exp(-inf) adds nothing
        if (v > 1) {
            labels[0] = 1;
        }
        same("logprobForward logp", n, (be, out) -> be.logprobForward(out.get(), be.allocate(DType.F32, n),
                be.fromHost(logits, n, v), be.fromHost(labels, n)));
        same("logprobForward lse", n, (be, out) -> be.logprobForward(be.allocate(DType.F32, n), out.get(),
                be.fromHost(logits, n, v), be.fromHost(labels, n)));
        same("logprobBackward in place", n * v, (be, out) -> {
            Tensor x = out.get().reshape(n, v), lse = be.allocate(DType.F32, n), ids = be.fromHost(labels, n);
            be.write(x, logits);
            be.logprobForward(be.allocate(DType.F32, n), lse, x, ids);
            be.logprobBackward(x, be.fromHost(dLogp, n), x, ids, lse);
        });
    }

    /** F32 logits (the lm_head's F32 output), BF16 dLogits in a buffer of their own. */
    @ParameterizedTest
    @CsvSource({"1,5", "9,300", "3,32000"})
    void logprobBackwardIntoBf16DLogits(int n, int v) {
        requireBf16();
        float[] logits = floats(n * v, 8f), dLogp = floats(n, 1f);
        int[] labels = random.ints(n, 0, v).toArray();
        labels[n - 1] = Backend.IGNORE_INDEX;
        logits[0] = Float.NEGATIVE_INFINITY;
        if (v > 1) {
            labels[0] = 1;
        }
        sameBf16("logprobBackward dLogits", n * v, true, 3, (be, act, out) -> {
            Tensor x = be.fromHost(logits, n, v), lse = be.allocate(DType.F32, n), ids = be.fromHost(labels, n);
            be.logprobForward(be.allocate(DType.F32, n), lse, x, ids);
            be.logprobBackward(out.get().reshape(n, v), be.fromHost(dLogp, n), x, ids, lse);
        });
    }

    @ParameterizedTest
    @CsvSource({"1,1", "4,300", "3,32000"})
    void argmaxRowsPicksTheFirstMaximumAndFlagsNaN(int s, int v) {
        float[] logits = floats(s * v, 8f);
        if (v > 3) {
            logits[v - 1] = 100f; // row 0: the maximum twice, the first wins
            logits[v / 2] = 100f;
        }
        if (s > 1) {
            java.util.Arrays.fill(logits, v, 2 * v, Float.NEGATIVE_INFINITY);
        }
        if (s > 2) {
            logits[2 * v + 1] = Float.NaN;
        }
        int[][] chosen = new int[2][];
        Backend[] both = {cpu, device};
        for (int b = 0; b < 2; b++) {
            Tensor ids = track(both[b].allocate(DType.I32, s));
            both[b].argmaxRows(ids, track(both[b].fromHost(logits, s, v)));
            chosen[b] = both[b].readInts(ids);
        }
        assertArrayEquals(chosen[0], chosen[1]);
        if (v > 3) {
            assertEquals(v / 2, chosen[1][0]);
        }
        if (s > 1) {
            assertEquals(0, chosen[1][1]);
        }
        if (s > 2) {
            assertEquals(-1, chosen[1][2]);
        }
    }

    /**
     * sampleRows on the device against the CPU on fresh random rows (with ties at the maximum, a row
     * of -inf, a NaN, a +inf, repeated history ids) under every filter. The device sums the weights in
     * another order and its exp may differ by an ulp, so a row may differ only where the draw or the
     * top-p cut lies within about 1e-15 of the row's weight of a boundary: a random row does so with
     * a probability of about 1e-14, so any difference here is a fault. Each row is also sampled alone
     * on the device and must choose the same token as in the batch.
     */
    @ParameterizedTest
    @CsvSource({"1,1", "7,300", "5,4099"})
    void sampleRowsChooseTheCpusTokensWhateverTheBatch(int s, int v) {
        float[] logits = floats(s * v, 6f);
        if (v > 3) {
            logits[v - 1] = 20f; // row 0: the maximum twice
            logits[v / 3] = 20f;
        }
        if (s > 1) {
            java.util.Arrays.fill(logits, v, 2 * v, Float.NEGATIVE_INFINITY);
        }
        if (s > 2) {
            logits[2 * v + v / 2] = Float.NaN;
        }
        if (s > 3) {
            logits[3 * v + v / 2] = Float.POSITIVE_INFINITY;
        }
        int l = 40;
        int[] streams = random.ints(2 * s).toArray(), draws = random.ints(s, 0, 1000).toArray();
        int[] history = random.ints(s * l, 0, Math.min(v, 30)).toArray(), lengths = random.ints(s, 0, l + 1).toArray();
        for (SamplingRule rule : new SamplingRule[] {new SamplingRule(0, 1, 0, 1.3), new SamplingRule(1, 1, 0, 1),
                new SamplingRule(0.8, 1, 20, 1), new SamplingRule(1.2, 0.9, 0, 1), new SamplingRule(0.7, 0.6, 50, 0.8),
                new SamplingRule(1, 0.95, v + 1, 1.2)}) {
            int[] expected = sample(cpu, rule, logits, s, v, streams, draws, history, l, lengths);
            int[] actual = sample(device, rule, logits, s, v, streams, draws, history, l, lengths);
            assertArrayEquals(expected, actual, rule + " on " + device.name() + " (seed " + seed + ")");
            for (int row = 0; row < s; row++) {
                int[] alone = sample(device, rule, java.util.Arrays.copyOfRange(logits, row * v, (row + 1) * v), 1, v,
                        java.util.Arrays.copyOfRange(streams, 2 * row, 2 * row + 2), new int[] {draws[row]},
                        java.util.Arrays.copyOfRange(history, row * l, (row + 1) * l), l, new int[] {lengths[row]});
                assertEquals(actual[row], alone[0], rule + ": row " + row + " alone on " + device.name());
            }
        }
        if (s > 2) {
            assertEquals(-1, sample(device, new SamplingRule(1, 1, 0, 1), logits, s, v, streams, draws, history, l, lengths)[2]);
        }
    }

    private int[] sample(Backend be, SamplingRule rule, float[] logits, int s, int v, int[] streams, int[] draws, int[] history,
            int l, int[] lengths) {
        Tensor out = track(be.allocate(DType.I32, s));
        be.sampleRows(out, track(be.fromHost(logits, s, v)), rule, track(be.fromHost(streams, s, 2)), track(be.fromHost(draws, s)),
                track(be.fromHost(history, s, l)), track(be.fromHost(lengths, s)));
        return be.readInts(out);
    }

    @Test
    void rowSumsAndTheSpinLossWithItsMetrics() {
        int b = 3, t = 11;
        float[] perToken = floats(b * t, 1f), dOut = floats(b, 1f);
        exact("rowSumForward", b, (be, out) -> be.rowSumForward(out.get(), be.fromHost(perToken, b, t)));
        // More rows than a block of the device kernel takes (32) and rows longer than its tile (128
        // columns), neither a multiple: the sums must still run in increasing t, bit for bit.
        int manyRows = 70, longRows = 300;
        float[] logits = floats(manyRows * longRows, 5f);
        exact("rowSumForward " + manyRows + "x" + longRows, manyRows,
                (be, out) -> be.rowSumForward(out.get(), be.fromHost(logits, manyRows, longRows)));
        same("rowSumBackward", b * t, (be, out) -> be.rowSumBackward(out.get().reshape(b, t), be.fromHost(dOut, b)));
        float[][] logps = {floats(b, 20f), floats(b, 20f), floats(b, 20f), floats(b, 20f)};
        for (SpinLossType type : SpinLossType.values()) {
            SpinLossStats expected = spinLoss(cpu, logps, type), actual = spinLoss(device, logps, type);
            double[] e = expected.toArray(), a = actual.toArray();
            for (int i = 0; i < e.length; i++) {
                assertEquals(e[i], a[i], 1e-12 * (1 + Math.abs(e[i])), type + " statistic " + i + ": " + expected + " vs " + actual);
            }
            for (boolean real : new boolean[] {true, false}) {
                same("spinLossBackward " + type + (real ? " real" : " generated"), b, (be, out) -> {
                    Tensor other = be.allocate(DType.F32, b);
                    be.spinLossBackward(real ? out.get() : other, real ? other : out.get(), be.fromHost(logps[0], b),
                            be.fromHost(logps[1], b), be.fromHost(logps[2], b), be.fromHost(logps[3], b), 0.1f, type, 0.5f);
                });
            }
        }
    }

    private SpinLossStats spinLoss(Backend be, float[][] logps, SpinLossType type) {
        int b = logps[0].length;
        return SpinLossOnHost.forward(be, track(be.fromHost(logps[0], b)), track(be.fromHost(logps[1], b)),
                track(be.fromHost(logps[2], b)), track(be.fromHost(logps[3], b)), 0.1f, type);
    }

    // ------------------------------------------------------------------------------ optimizers, reductions

    @ParameterizedTest
    @CsvSource({"0", "0.01"})
    void optimizerStepsMatchTorchsFloatArithmeticBitForBit(float weightDecay) {
        int n = 5003;
        float[] param = floats(n, 1f), grad = floats(n, 1e-2f), state = new float[n], state2 = new float[n];
        for (int i = 0; i < n; i++) {
            state[i] = Math.abs(random.nextFloat()) * 1e-4f;
            state2[i] = random.nextFloat() * 1e-3f;
        }
        exact("rmspropStep", n, (be, out) -> {
            be.write(out.get(), param);
            be.rmspropStep(out.get(), be.fromHost(grad, n), be.fromHost(state, n), 1e-3f, 0.99f, 1e-8f, weightDecay);
        });
        exact("adamwStep", n, (be, out) -> {
            be.write(out.get(), param);
            be.adamwStep(out.get(), be.fromHost(grad, n), be.fromHost(state2, n), be.fromHost(state, n), 1e-3f, 0.9f,
                    0.999f, 1e-8f, weightDecay, 3);
        });
    }

    /**
     * An optimizer step that writes the BF16 compute copy in the same pass is bit for bit the step
     * followed by a cast, in the master, the state and the copy, on the CPU and on the device.
     */
    @ParameterizedTest
    @CsvSource({"rmsprop,0", "rmsprop,0.01", "adamw,0", "adamw,0.01"})
    void optimizerStepWithComputeCopyIsTheStepThenACast(String optimizer, float weightDecay) {
        int n = 5003;
        float[] param = floats(n, 1f), grad = floats(n, 1e-2f), state = new float[n], state2 = new float[n];
        for (int i = 0; i < n; i++) {
            state[i] = Math.abs(random.nextFloat()) * 1e-4f;
            state2[i] = random.nextFloat() * 1e-3f;
        }
        for (Backend be : List.of(cpu, device)) {
            Tensor[][] results = new Tensor[2][];
            for (int fused = 0; fused < 2; fused++) {
                Tensor p = track(be.fromHost(param, n)), g = track(be.fromHost(grad, n)), s = track(be.fromHost(state, n));
                Tensor s2 = track(be.fromHost(state2, n)), copy = track(be.allocate(DType.BF16, n));
                Tensor fusedCopy = fused == 1 ? copy : null;
                if (optimizer.equals("rmsprop")) {
                    be.rmspropStep(p, g, s, fusedCopy, StepGradient.AS_IS, 1e-3f, 0.99f, 1e-8f, weightDecay);
                } else {
                    be.adamwStep(p, g, s2, s, fusedCopy, StepGradient.AS_IS, 1e-3f, 0.9f, 0.999f, 1e-8f, weightDecay, 3);
                }
                if (fused == 0) {
                    be.cast(copy, p);
                }
                results[fused] = new Tensor[] {p, s, s2, copy};
            }
            String[] names = {"param", "state", "state2", "computeCopy"};
            for (int k = 0; k < names.length; k++) {
                assertSameBits(be.read(results[0][k]), be.read(results[1][k]), optimizer + " step with computeCopy: "
                        + names[k] + " on " + be.name(), "the step then cast");
            }
            Tensor p = track(be.fromHost(param, n)), f32Copy = track(be.allocate(DType.F32, n));
            assertThrows(IllegalArgumentException.class, () -> be.rmspropStep(p, p, p, f32Copy, StepGradient.AS_IS, 1e-3f,
                    0.99f, 1e-8f, 0f), "an F32 compute copy");
        }
    }

    /**
     * The training step's fused form, clipFactor and then a step that applies the factor and zeroes
     * the gradient in its own pass, is bit for bit the unfused sequence, clipGradNorm (scaling in
     * place), the step and {@code fill(grad, 0)}: in the norm, the master, the state, the compute
     * copy, and the gradient (exactly +0 after); with the factor below 1 (clipping), at 1 (under
     * the limit) and without a limit; with and without the compute copy and weight decay; at sizes
     * no vector width or block divides; on the CPU and the device. The factor is clip_grad_norm_'s
     * in double, rounded once.
     */
    @ParameterizedTest
    @CsvSource({"rmsprop,clipping", "rmsprop,under", "rmsprop,off", "adamw,clipping", "adamw,under", "adamw,off"})
    void optimizerStepWithClipFactorAndZeroingIsClipThenStepThenFill(String optimizer, String limit) {
        for (int n : new int[] {1, 257, 4099}) {
            float[] param = floats(n, 1f), grad = floats(n, 1e-1f), state = new float[n], state2 = new float[n];
            double squares = 0;
            for (int i = 0; i < n; i++) {
                state[i] = Math.abs(random.nextFloat()) * 1e-4f;
                state2[i] = random.nextFloat() * 1e-3f;
                grad[i] = grad[i] == 0 ? 1e-3f : grad[i];
                squares += (double) grad[i] * grad[i];
            }
            double maxNorm = switch (limit) {
                case "clipping" -> Math.sqrt(squares) / 3;
                case "under" -> Math.sqrt(squares) * 3;
                default -> 0;
            };
            for (Backend be : List.of(cpu, device)) {
                for (boolean withCopy : new boolean[] {false, true}) {
                    float weightDecay = withCopy ? 0f : 0.01f;
                    Tensor[][] results = new Tensor[2][];
                    for (int fused = 0; fused < 2; fused++) {
                        Tensor p = track(be.fromHost(param, n)), g = track(be.fromHost(grad, n));
                        Tensor s = track(be.fromHost(state, n)), s2 = track(be.fromHost(state2, n));
                        Tensor copy = withCopy ? track(be.allocate(DType.BF16, n)) : null;
                        Tensor norm = track(be.allocate(DType.F64, 1)), sumOfSquares = track(be.allocate(DType.F64, 1));
                        be.sumOfSquares(sumOfSquares, g);
                        StepGradient gradient = StepGradient.AS_IS;
                        if (fused == 1) {
                            Tensor factor = track(be.allocate(DType.F32, 1));
                            be.clipFactor(norm, factor, sumOfSquares, maxNorm);
                            float value = be.read(factor)[0];
                            double coefficient = maxNorm / (be.readDoubles(norm)[0] + 1e-6);
                            float expected = limit.equals("clipping") ? (float) coefficient : 1f;
                            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(value),
                                    "clip factor " + value + " on " + be.name() + " for limit " + maxNorm + ", expected " + expected);
                            gradient = new StepGradient(factor, true);
                        } else {
                            be.clipGradNorm(norm, g, sumOfSquares, maxNorm);
                        }
                        if (optimizer.equals("rmsprop")) {
                            be.rmspropStep(p, g, s, copy, gradient, 1e-3f, 0.99f, 1e-8f, weightDecay);
                        } else {
                            be.adamwStep(p, g, s2, s, copy, gradient, 1e-3f, 0.9f, 0.999f, 1e-8f, weightDecay, 3);
                        }
                        if (fused == 0) {
                            be.fill(g, 0f);
                        }
                        results[fused] = new Tensor[] {p, s, s2, g, copy == null ? p : copy};
                        assertEquals(Double.doubleToRawLongBits(Math.sqrt(be.readDoubles(sumOfSquares)[0])),
                                Double.doubleToRawLongBits(be.readDoubles(norm)[0]), "norm on " + be.name());
                    }
                    String[] names = {"param", "state", "state2", "grad", "computeCopy"};
                    for (int k = 0; k < names.length; k++) {
                        float[] expected = be.read(results[0][k]), actual = be.read(results[1][k]);
                        for (int i = 0; i < n; i++) {
                            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])
                                    || (k == 3 && Float.floatToRawIntBits(actual[i]) != 0)) {
                                fail(optimizer + " step with clip factor and zeroing (" + limit + ", n " + n + (withCopy ? ", copy" : "")
                                        + "): " + names[k] + " element " + i + " is " + actual[i] + " on " + be.name() + ", "
                                        + expected[i] + " from clipGradNorm, the step and fill (seed " + seed + ")");
                            }
                        }
                    }
                }
            }
        }
        Tensor p = track(device.fromHost(floats(5, 1f), 5)), wide = track(device.allocate(DType.F32, 2));
        assertThrows(IllegalArgumentException.class, () -> device.rmspropStep(p, p, p, null, new StepGradient(wide, true),
                1e-3f, 0.99f, 1e-8f, 0f), "a gradient scale of two elements");
        Tensor onCpu = track(cpu.allocate(DType.F32, 1));
        assertThrows(IllegalArgumentException.class, () -> device.adamwStep(p, p, p, p, null, new StepGradient(onCpu, false),
                1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1), "a gradient scale on another backend");
    }

    @Test
    void sumsNormsAndFiniteness() {
        float[] values = floats(1_000_003, 1f);
        Tensor onDevice = track(device.fromHost(values, values.length));
        Tensor onCpu = track(cpu.fromHost(values, values.length));
        assertEquals(cpu.sum(onCpu), device.sum(onDevice), 1e-9 * values.length);
        assertEquals(cpu.sumOfSquares(onCpu), device.sumOfSquares(onDevice), 1e-12 * values.length);
        Tensor small = track(device.fromHost(floats(17, 3f), 17));
        assertEquals(Math.sqrt(device.sumOfSquares(onDevice) + device.sumOfSquares(small)),
                device.globalNorm(List.of(onDevice, small)), 1e-9);
        assertTrue(device.allFinite(onDevice));
        Tensor empty = track(device.allocate(DType.F32, 0));
        assertEquals(0.0, device.sum(empty));
        assertEquals(0.0, device.sumOfSquares(empty));
        assertTrue(device.allFinite(empty));
        assertEquals(Math.sqrt(device.sumOfSquares(small)), device.globalNorm(List.of(empty, small)), 1e-12);
        float[] broken = values.clone();
        broken[values.length / 2] = Float.POSITIVE_INFINITY;
        assertFalse(device.allFinite(track(device.fromHost(broken, broken.length))));
        broken[values.length / 3] = Float.NaN;
        assertFalse(device.allFinite(track(device.fromHost(broken, broken.length))));
    }

    /**
     * The divisor divides the finished sum once (the backend's own plain sum divided on the host,
     * bit for bit; a negative divisor negates), and an empty input gives 0 / divisor; on the CPU
     * and the device.
     */
    @Test
    void sumsIntoAScalarDivideOnce() {
        float[] values = floats(70_001, 2f);
        double cpuSum = cpu.sum(track(cpu.fromHost(values, values.length)));
        for (Backend be : new Backend[] {cpu, device}) {
            Tensor in = track(be.fromHost(values, values.length));
            Tensor out = track(be.allocate(DType.F64, 1));
            double plain = be.sum(in);
            assertEquals(cpuSum, plain, 1e-9 * values.length, be.name());
            for (double divisor : new double[] {1, 3, -70_001 * 32_000.0}) {
                be.sum(out, in, divisor);
                assertEquals(Double.doubleToRawLongBits(plain / divisor), Double.doubleToRawLongBits(be.readDoubles(out)[0]),
                        be.name() + " divisor " + divisor);
            }
            be.sum(out, track(be.allocate(DType.F32, 0)), -4);
            assertEquals(Double.doubleToRawLongBits(-0.0), Double.doubleToRawLongBits(be.readDoubles(out)[0]), be.name());
        }
    }

    /**
     * F64 statistics round-trip exactly, and weighted running sums follow Java's double
     * arithmetic bit for bit (product and sum each rounded; a fused multiply-add would differ),
     * -0 kept as the identity it is; on the CPU and the device.
     */
    @Test
    void f64StatisticsRoundTripAndAccumulateAsJavaDoubles() {
        int n = 300;
        double[] start = new double[n];
        for (int i = 0; i < n; i++) {
            start[i] = i == 0 ? -0.0 : random.nextGaussian() * 1e3;
        }
        start[1] = Double.NaN;
        start[2] = Double.NEGATIVE_INFINITY;
        start[3] = Double.MIN_VALUE;
        double[] weights = {8, 0.1, 1.0 / 3};
        double[][] added = new double[weights.length][n];
        double[] expected = start.clone();
        for (int r = 0; r < weights.length; r++) {
            for (int i = 0; i < n; i++) {
                added[r][i] = i == 0 ? -0.0 : random.nextGaussian() * 100 / 7;
                expected[i] = expected[i] + added[r][i] * weights[r];
            }
        }
        for (Backend be : new Backend[] {cpu, device}) {
            Tensor sums = track(be.allocate(DType.F64, n)), values = track(be.allocate(DType.F64, n));
            be.write(sums, start);
            assertArrayEquals(start, be.readDoubles(sums), be.name());
            for (int r = 0; r < weights.length; r++) {
                be.write(values, added[r]);
                be.accumulateWeighted(sums, values, weights[r]);
            }
            double[] got = be.readDoubles(sums);
            for (int i = 0; i < n; i++) {
                assertEquals(Double.doubleToRawLongBits(expected[i]), Double.doubleToRawLongBits(got[i]), be.name() + " element " + i);
            }
            assertThrows(IllegalArgumentException.class, () -> be.read(sums));
            assertThrows(IllegalArgumentException.class, () -> be.write(sums, new float[n]));
            assertThrows(IllegalArgumentException.class, () -> be.accumulateWeighted(sums, track(be.allocate(DType.F64, 1)), 1));
        }
    }

    /**
     * The ops whose results a training step reads later (the SPIN loss's statistics, sums into a
     * scalar, running sums, clipping, the clip factor and a step that applies it) and uploads queue
     * work without the host waiting for a device.
     */
    @Test
    void statisticsStayOnTheBackendWithoutWaiting() {
        int b = 4;
        Tensor stats = track(device.allocate(DType.F64, SpinLossStats.COUNT)), sums = track(device.allocate(DType.F64, SpinLossStats.COUNT));
        Tensor norm = track(device.allocate(DType.F64, 1)), scalar = track(device.allocate(DType.F64, 1));
        Tensor grads = track(device.allocate(DType.F32, 5000));
        Tensor factor = track(device.allocate(DType.F32, 1)), param = track(device.allocate(DType.F32, 5000));
        Tensor state = track(device.allocate(DType.F32, 5000));
        device.synchronize();
        java.util.OptionalLong before = device.hostSynchronizations();
        Tensor logps = track(device.fromHost(floats(4 * b, 20f), 4 * b));
        device.spinLossForward(stats, logps.view(0, b), logps.view(b, b), logps.view(2 * b, b), logps.view(3 * b, b), 0.1f,
                SpinLossType.SIGMOID);
        device.accumulateWeighted(sums, stats, 2);
        device.sum(scalar, logps, 16);
        device.write(grads, floats(5000, 1f));
        device.clipGradNorm(norm, grads, 1.0);
        device.sumOfSquares(scalar, grads);
        device.clipFactor(norm, factor, scalar, 1.0);
        device.rmspropStep(param, grads, state, null, new StepGradient(factor, true), 1e-3f, 0.99f, 1e-8f, 0f);
        device.write(scalar, new double[] {1});
        assertEquals(before, device.hostSynchronizations(), "queued work waited for the device");
    }

    @ParameterizedTest
    @CsvSource({"0", "1000", "0.5"})
    void clippingScalesOnlyAboveTheLimitAndLeavesThePreClipNorm(double maxNorm) {
        int n = 4099;
        float[] grads = floats(n, 0.1f);
        double[] norms = new double[2];
        Backend[] both = {cpu, device};
        float[][] clipped = new float[2][];
        for (int b = 0; b < 2; b++) {
            Tensor g = track(both[b].fromHost(grads, n));
            Tensor norm = track(both[b].allocate(DType.F64, 1));
            both[b].clipGradNorm(norm, g, maxNorm);
            norms[b] = both[b].readDoubles(norm)[0];
            clipped[b] = both[b].read(g);
        }
        double independent = 0;
        for (float g : grads) {
            independent += (double) g * g;
        }
        assertEquals(Math.sqrt(independent), norms[0], 1e-12 * norms[0]);
        assertEquals(norms[0], norms[1], 1e-12 * norms[0]);
        double scale = maxNorm > 0 && maxNorm / (norms[0] + 1e-6) < 1 ? maxNorm / (norms[0] + 1e-6) : 1;
        for (int i = 0; i < n; i++) {
            assertEquals(grads[i] * scale, clipped[1][i], 1e-6 * Math.abs(grads[i]) + 1e-12, "element " + i);
            assertEquals(clipped[0][i], clipped[1][i], 1e-6 * Math.abs(clipped[0][i]) + 1e-12, "element " + i);
        }
        if (maxNorm == 1000 || maxNorm == 0) {
            assertArrayEquals(grads, clipped[1], "no clipping below the limit or without one");
        }
    }

    // ------------------------------------------------------------------------------ harness

    /** The output tensor an op writes into: NaN-filled F32 of the given size on its backend. */
    @FunctionalInterface
    interface Output {
        Tensor get();
    }

    @FunctionalInterface
    interface Op {
        void run(Backend backend, Output out);
    }

    /** Runs {@code op} on both backends and compares the outputs element by element; returns the device's. */
    private float[] same(String name, int size, Op op) {
        float[] expected = run(cpu, size, op), actual = run(device, size, op);
        float scale = finiteScale(expected);
        for (int i = 0; i < size; i++) {
            float e = expected[i], a = actual[i];
            boolean ok = Float.isNaN(e) ? Float.isNaN(a)
                    : Float.isInfinite(e) ? e == a : Math.abs(a - e) <= ATOL * Math.max(1, scale) + RTOL * Math.abs(e);
            if (!ok) {
                fail(name + ": element " + i + " of " + size + " is " + a + " on " + device.name() + ", " + e
                        + " on the CPU (seed " + seed + ")");
            }
        }
        return actual;
    }

    /** An op run with its activations in {@code act}: BF16 on the device, F32 on the CPU. */
    @FunctionalInterface
    interface TypedOp {
        void run(Backend backend, DType act, Output out);
    }

    /** Skips a BF16 case where the device does not compute in BF16 (the CPU, the reference). */
    private void requireBf16() {
        assumeTrue(device.computeTypes().contains(DType.BF16), device.name() + " does not compute in BF16");
    }

    /** A tensor of {@code act} holding {@code values} (bf16-valued: see {@link #bf16Floats}). */
    private static Tensor input(Backend be, DType act, float[] values, int... shape) {
        Tensor t = be.allocate(act, shape);
        be.write(t, values);
        return t;
    }

    /** Random floats that bf16 holds exactly, so that both backends see the same inputs. */
    private float[] bf16Floats(int n, float scale) {
        float[] v = floats(n, scale);
        for (int i = 0; i < n; i++) {
            v[i] = BFloat16.toFloat(BFloat16.fromFloat(v[i]));
        }
        return v;
    }

    /**
     * Runs {@code op} on the device with BF16 activations and on the CPU with F32 ones, and holds the
     * device to DESIGN section 4: a naive bf16 computation, exact and rounded once, is off by at most
     * half a bf16 ulp per element, so each element of a BF16 output may be off by {@code factor}
     * half-ulps (2 for outputs, 3 for gradients) and the output's L2 error may be {@code factor}
     * times that of the CPU's result rounded to bf16, each plus the fp32 tolerance (summation order).
     * F32 outputs ({@code activationOutput} false: statistics, parameter gradients) keep the fp32
     * tolerance: they are computed in fp32 from the same inputs.
     */
    private float[] sameBf16(String name, int size, boolean activationOutput, double factor, TypedOp op) {
        float[] expected = run(cpu, size, DType.F32, (be, out) -> op.run(be, DType.F32, out));
        float[] actual = run(device, size, activationOutput ? DType.BF16 : DType.F32,
                (be, out) -> op.run(be, DType.BF16, out));
        float scale = finiteScale(expected);
        double error = 0, naive = 0, norm = 0;
        for (int i = 0; i < size; i++) {
            float e = expected[i], a = actual[i];
            boolean finite = Float.isFinite(e); // else, as in same: NaN for NaN, the same infinity
            double slack = ATOL * Math.max(1, scale) + RTOL * Math.abs(e);
            double halfUlp = activationOutput ? Math.ulp(Math.abs(e)) * 65536 / 2 : 0;
            boolean ok = finite ? Math.abs(a - e) <= factor * halfUlp + slack : Float.isNaN(e) ? Float.isNaN(a) : a == e;
            if (!ok) {
                fail(name + " (bf16): element " + i + " of " + size + " is " + a + " on " + device.name() + ", " + e
                        + " on the CPU in fp32 (seed " + seed + ")");
            }
            if (!finite) {
                continue; // not in the L2 error
            }
            double rounded = activationOutput ? BFloat16.toFloat(BFloat16.fromFloat(e)) : e;
            error += (a - e) * (double) (a - e);
            naive += (rounded - e) * (rounded - e);
            norm += (double) e * e;
        }
        double relative = Math.sqrt(error / norm), naiveRelative = Math.sqrt(naive / norm);
        assertTrue(relative <= factor * naiveRelative + RTOL, name + " (bf16): relative L2 error " + relative + " on "
                + device.name() + ", more than " + factor + " x " + naiveRelative + " of rounding to bf16 (seed " + seed + ")");
        return actual;
    }

    /**
     * The largest finite magnitude in a reference, which scales the absolute tolerance: an infinity
     * (lse = -inf for a query that sees no key) would make every tolerance infinite.
     */
    private static float finiteScale(float[] expected) {
        float scale = 0;
        for (float e : expected) {
            if (Float.isFinite(e)) {
                scale = Math.max(scale, Math.abs(e));
            }
        }
        return scale;
    }

    private void exact(String name, int size, Op op) {
        assertSameBits(run(cpu, size, op), run(device, size, op), name + " on " + device.name(), "the CPU");
    }

    private float[] run(Backend be, int size, Op op) {
        return run(be, size, DType.F32, op);
    }

    /** Runs {@code op}, whose output (of {@code outType}, poisoned with NaN) it asks for, and reads the output. */
    private float[] run(Backend be, int size, DType outType, Op op) {
        List<Tensor> made = new ArrayList<>();
        Tensor[] out = new Tensor[1];
        Backend tracking = TrackingBackend.of(be, made);
        op.run(tracking, () -> {
            if (out[0] == null) {
                out[0] = be.allocate(outType, size);
                made.add(out[0]);
                poison(be, out[0]);
            }
            return out[0];
        });
        try {
            return be.read(out[0] == null ? fail("op wrote no output") : out[0]);
        } finally {
            made.forEach(Tensor::close);
        }
    }

    /** NaN in every element: fill for F32; BF16 through a write (a rounded NaN stays NaN). */
    private static void poison(Backend be, Tensor t) {
        if (t.dtype() == DType.F32) {
            be.fill(t, Float.NaN);
        } else {
            float[] nan = new float[Math.toIntExact(t.size())];
            java.util.Arrays.fill(nan, Float.NaN);
            be.write(t, nan);
        }
    }

    private float[] floats(int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
        }
        return v;
    }

    private Tensor track(Tensor t) {
        tensors.add(t);
        return t;
    }
}
