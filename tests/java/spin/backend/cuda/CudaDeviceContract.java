package spin.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import spin.backend.BFloat16;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceUnderTest;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
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

    /**
     * The tensor-core attention forward (attentionForward on BF16 with head dim 64 or 128) against
     * the simple kernel (attentionForwardSimple) and the CPU op in fp32, on bf16-valued inputs with
     * the CPU's result as the reference. The bound is what bf16 rounding allows, derived rather than
     * measured: the tensor-core kernel rounds P to bf16 before P V (2^-9 of sum_j p_j |v_jc|, at
     * most 2^-9 max|v|) and out (2^-9 |out|); both kernels are held to twice that,
     * 2^-8 (|out| + max|v|), per element; lse (fp32 from the same scores) to 1e-5 relative. Masks:
     * holes at the first and last key of each 64-key tile, and sequence 1 padded on the left by 70
     * keys (a whole masked key tile where T = 100), whose rows must come out 0 with lse -inf.
     */
    @ParameterizedTest
    @CsvSource({"2,100,4,1,64,0", "1,65,2,2,128,64", "2,37,4,2,64,5", "1,1,2,2,128,0", "2,70,2,2,128,63"})
    void theTensorCoreAttentionForwardAgreesWithTheSimpleKernelAndTheCpu(int b, int t, int h, int kvh, int d,
            int window) {
        SplittableRandom random = new SplittableRandom(1234 + t * 7 + d);
        float[] q = bf16Floats(random, b * t * h * d, 1.5f), k = bf16Floats(random, b * t * kvh * d, 1.5f);
        float[] v = bf16Floats(random, b * t * kvh * d, 1f);
        int[] mask = tileEdgeMask(b, t);
        try (Backend backend = DeviceUnderTest.openOrSkip(spec()); CpuBackend cpu = new CpuBackend(2)) {
            CudaBackend cuda = (CudaBackend) backend;
            List<Tensor> tensors = new ArrayList<>();
            try {
                Tensor cq = bf16(cuda, tensors, q, b, t, h, d), ck = bf16(cuda, tensors, k, b, t, kvh, d);
                Tensor cv = bf16(cuda, tensors, v, b, t, kvh, d);
                Tensor cmask = add(tensors, cuda.fromHost(mask, b, t));
                Tensor tcOut = add(tensors, cuda.allocate(DType.BF16, b, t, h, d));
                Tensor tcLse = add(tensors, cuda.allocate(DType.F32, b, h, t));
                Tensor simpleOut = add(tensors, cuda.allocate(DType.BF16, b, t, h, d));
                Tensor simpleLse = add(tensors, cuda.allocate(DType.F32, b, h, t));
                cuda.attentionForward(tcOut, tcLse, cq, ck, cv, cmask, window);
                cuda.attentionForwardSimple(simpleOut, simpleLse, cq, ck, cv, cmask, window);
                Tensor out = add(tensors, cpu.allocate(DType.F32, b, t, h, d));
                Tensor lse = add(tensors, cpu.allocate(DType.F32, b, h, t));
                cpu.attentionForward(out, lse, add(tensors, cpu.fromHost(q, b, t, h, d)),
                        add(tensors, cpu.fromHost(k, b, t, kvh, d)), add(tensors, cpu.fromHost(v, b, t, kvh, d)),
                        add(tensors, cpu.fromHost(mask, b, t)), window);
                float[] expected = cpu.read(out), expectedLse = cpu.read(lse);
                float maxV = 0;
                for (float x : v) {
                    maxV = Math.max(maxV, Math.abs(x));
                }
                for (var kernel : List.of(List.of("tensor cores", tcOut, tcLse), List.of("simple", simpleOut, simpleLse))) {
                    String name = (String) kernel.get(0);
                    float[] actual = cuda.read((Tensor) kernel.get(1)), actualLse = cuda.read((Tensor) kernel.get(2));
                    for (int i = 0; i < expected.length; i++) {
                        double bound = 0x1p-8 * (Math.abs(expected[i]) + maxV) + 1e-6;
                        if (!(Math.abs(actual[i] - expected[i]) <= bound)) {
                            throw new AssertionError(name + " out[" + i + "] = " + actual[i] + ", cpu " + expected[i]
                                    + ", bound " + bound);
                        }
                    }
                    for (int i = 0; i < expectedLse.length; i++) {
                        if (Float.isInfinite(expectedLse[i])) {
                            assertEquals(Float.NEGATIVE_INFINITY, actualLse[i], name + " lse[" + i + "] of a blind row");
                        } else {
                            assertEquals(expectedLse[i], actualLse[i], 1e-5 * Math.abs(expectedLse[i]) + 1e-5,
                                    name + " lse[" + i + "]");
                        }
                    }
                }
            } finally {
                tensors.forEach(Tensor::close);
            }
        }
    }

    /**
     * The tensor-core backward (attentionBackward on BF16 with head dim 64 or 128: the dq pass and
     * the dk/dv pass) after the tensor-core forward, against the CPU op in fp32 on the same
     * bf16-valued inputs. The per-element bound follows where the kernels round: each term of a
     * gradient's sum carries a rounding error of a few 2^-9 of its size (P and dS rounded to bf16
     * before their products; out in bf16, so delta_i = dOut_i . out_i is off by up to 2^-9 a_i with
     * a_i = sum_c |dOut_ic out_ic|), and independent rounding errors add in quadrature. So with the
     * terms' root-sum-square computed here in double from the inputs (dv_jc: p_ij dOut_ic; dq_ic and
     * dk_jc: p_ij (|dp_ij| + a_i) k_jc (resp. q_ic) / sqrt(D)), an element is held to 2^-6 of that
     * plus its own value (the final rounding): about 3x the worst seen on the emulator, and 3% of
     * delta in the dq pass already breaks it. A gradient with nothing to sum (a blind query, a
     * masked key) must
     * be exactly zero, and two runs must agree bit for bit. The shapes take one and two query heads
     * per block (GQA groups 1, 2 and 4), both head dims, windows, holes at the key tiles' edges and
     * a whole masked key tile.
     */
    @ParameterizedTest
    @CsvSource({"2,100,4,1,64,0", "1,65,2,2,128,64", "2,37,8,2,64,5", "1,70,4,2,128,63"})
    void theTensorCoreAttentionBackwardAgreesWithTheCpu(int b, int t, int h, int kvh, int d, int window) {
        SplittableRandom random = new SplittableRandom(4321 + t * 7 + d);
        float[] q = bf16Floats(random, b * t * h * d, 1.5f), k = bf16Floats(random, b * t * kvh * d, 1.5f);
        float[] v = bf16Floats(random, b * t * kvh * d, 1f), dOut = bf16Floats(random, b * t * h * d, 1f);
        int[] mask = tileEdgeMask(b, t);
        try (Backend backend = DeviceUnderTest.openOrSkip(spec()); CpuBackend cpu = new CpuBackend(2)) {
            CudaBackend cuda = (CudaBackend) backend;
            List<Tensor> tensors = new ArrayList<>();
            try {
                Tensor cq = bf16(cuda, tensors, q, b, t, h, d), ck = bf16(cuda, tensors, k, b, t, kvh, d);
                Tensor cv = bf16(cuda, tensors, v, b, t, kvh, d), cdOut = bf16(cuda, tensors, dOut, b, t, h, d);
                Tensor cmask = add(tensors, cuda.fromHost(mask, b, t));
                Tensor cOut = add(tensors, cuda.allocate(DType.BF16, b, t, h, d));
                Tensor cLse = add(tensors, cuda.allocate(DType.F32, b, h, t));
                cuda.attentionForward(cOut, cLse, cq, ck, cv, cmask, window);
                Tensor[] grads = new Tensor[6];
                for (int run = 0; run < 2; run++) {
                    Tensor gq = add(tensors, cuda.allocate(DType.BF16, b, t, h, d));
                    Tensor gk = add(tensors, cuda.allocate(DType.BF16, b, t, kvh, d));
                    Tensor gv = add(tensors, cuda.allocate(DType.BF16, b, t, kvh, d));
                    cuda.attentionBackward(gq, gk, gv, cdOut, cq, ck, cv, cmask, cOut, cLse, window);
                    grads[run * 3] = gq;
                    grads[run * 3 + 1] = gk;
                    grads[run * 3 + 2] = gv;
                }

                Tensor pq = add(tensors, cpu.fromHost(q, b, t, h, d)), pk = add(tensors, cpu.fromHost(k, b, t, kvh, d));
                Tensor pv = add(tensors, cpu.fromHost(v, b, t, kvh, d)), pmask = add(tensors, cpu.fromHost(mask, b, t));
                Tensor out = add(tensors, cpu.allocate(DType.F32, b, t, h, d));
                Tensor lse = add(tensors, cpu.allocate(DType.F32, b, h, t));
                cpu.attentionForward(out, lse, pq, pk, pv, pmask, window);
                Tensor dq = add(tensors, cpu.allocate(DType.F32, b, t, h, d));
                Tensor dk = add(tensors, cpu.allocate(DType.F32, b, t, kvh, d));
                Tensor dv = add(tensors, cpu.allocate(DType.F32, b, t, kvh, d));
                cpu.attentionBackward(dq, dk, dv, add(tensors, cpu.fromHost(dOut, b, t, h, d)), pq, pk, pv, pmask, out,
                        lse, window);

                double[][] bounds = backwardBounds(q, k, v, dOut, mask, b, t, h, kvh, d, window);
                float[][] expected = {cpu.read(dq), cpu.read(dk), cpu.read(dv)};
                String[] names = {"dq", "dk", "dv"};
                for (int g = 0; g < 3; g++) {
                    float[] actual = cuda.read(grads[g]);
                    for (int i = 0; i < actual.length; i++) {
                        double spread = Math.sqrt(bounds[g][i]);
                        double bound = 0x1p-6 * (spread + Math.abs(expected[g][i]));
                        boolean ok = spread == 0 ? actual[i] == 0 : Math.abs(actual[i] - expected[g][i]) <= bound;
                        if (!ok) {
                            throw new AssertionError(names[g] + "[" + i + "] = " + actual[i] + ", cpu " + expected[g][i]
                                    + ", bound " + bound + (spread == 0 ? " (nothing to sum: must be 0)" : ""));
                        }
                    }
                    assertArrayEquals(actual, cuda.read(grads[g + 3]), names[g] + " of two runs, bit for bit");
                }
            } finally {
                tensors.forEach(Tensor::close);
            }
        }
    }

    /**
     * The sums of squared terms behind {@link #theTensorCoreAttentionBackwardAgreesWithTheCpu}'s
     * bound, per element of dq, dk and dv (the layouts of q, k and v), from the attention computed
     * in double.
     */
    private static double[][] backwardBounds(float[] q, float[] k, float[] v, float[] dOut, int[] mask, int b, int t,
            int h, int kvh, int d, int window) {
        double[] mq = new double[q.length], mk = new double[k.length], mv = new double[v.length];
        double scale = 1 / Math.sqrt(d);
        double[] s = new double[t], p = new double[t];
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                int g = hi / (h / kvh);
                for (int i = 0; i < t; i++) {
                    int qRow = ((bi * t + i) * h + hi) * d;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < t; j++) {
                        boolean visible = j <= i && (window == 0 || j > i - window) && mask[bi * t + j] != 0;
                        s[j] = Double.NEGATIVE_INFINITY;
                        if (visible) {
                            int kRow = ((bi * t + j) * kvh + g) * d;
                            double dot = 0;
                            for (int c = 0; c < d; c++) {
                                dot += (double) q[qRow + c] * k[kRow + c];
                            }
                            s[j] = dot * scale;
                            max = Math.max(max, s[j]);
                        }
                    }
                    if (max == Double.NEGATIVE_INFINITY) {
                        continue;  // a blind query: no gradient flows through it
                    }
                    double sum = 0;
                    for (int j = 0; j < t; j++) {
                        p[j] = Math.exp(s[j] - max);
                        sum += p[j];
                    }
                    double[] o = new double[d];
                    for (int j = 0; j < t; j++) {
                        p[j] /= sum;
                        for (int c = 0; c < d && p[j] > 0; c++) {
                            o[c] += p[j] * v[((bi * t + j) * kvh + g) * d + c];
                        }
                    }
                    double a = 0;
                    for (int c = 0; c < d; c++) {
                        a += Math.abs(dOut[qRow + c] * o[c]);
                    }
                    for (int j = 0; j < t; j++) {
                        if (p[j] == 0) {
                            continue;
                        }
                        int kRow = ((bi * t + j) * kvh + g) * d;
                        double dp = 0;
                        for (int c = 0; c < d; c++) {
                            dp += (double) dOut[qRow + c] * v[kRow + c];
                        }
                        double ds = p[j] * (Math.abs(dp) + a) * scale;
                        for (int c = 0; c < d; c++) {
                            mq[qRow + c] += square(ds * k[kRow + c]);
                            mk[kRow + c] += square(ds * q[qRow + c]);
                            mv[kRow + c] += square(p[j] * dOut[qRow + c]);
                        }
                    }
                }
            }
        }
        return new double[][] {mq, mk, mv};
    }

    /**
     * A key mask [b, t] with holes at the first and last key of each 64-key tile, and sequence 1
     * padded on the left by up to 70 keys (a whole masked key tile where t = 100).
     */
    private static int[] tileEdgeMask(int b, int t) {
        int[] mask = new int[b * t];
        for (int s = 0; s < b; s++) {
            for (int j = 0; j < t; j++) {
                boolean hole = s == 1 ? j < Math.min(70, t - 1) : j % 64 == 0 || j % 64 == 63;
                mask[s * t + j] = hole ? 0 : 1;
            }
        }
        return mask;
    }

    private static double square(double x) {
        return x * x;
    }

    /**
     * The decode kernel (attentionCachedForward, with the split over the context forced to
     * {@code splits}; 0 = the library's rule) and the simple kernel (attentionCachedForwardSimple)
     * against the CPU op, per element, in F32 and in BF16 on bf16-valued inputs. Three sequences
     * of 1, 48 and 77 positions in shuffled physical blocks, queried at their last positions, at
     * block edges and in a prefill chunk. The simple kernel is held to what bf16 rounding allows
     * (2^-8 (|out| + max|v|), F32 to 1e-5 of that); the decode kernel to within 2x the simple
     * kernel's worst error at the same precision (plus 1e-6), and to its own bits on a second run.
     */
    @ParameterizedTest
    @CsvSource({"F32,32,8,128,16,0,0", "BF16,32,8,128,16,0,0", "F32,8,2,64,16,0,3", "BF16,8,2,64,16,20,3",
            "F32,4,4,24,5,7,2", "BF16,8,1,128,16,0,64", "F32,8,1,128,16,33,5"})
    void theDecodeKernelAgreesWithTheSimpleKernelAndTheCpu(DType dtype, int h, int kvh, int d, int blockSize, int window,
            int splits) {
        int[] lengths = {1, 48, 77};
        int maxBlocks = (77 + blockSize - 1) / blockSize, physical = lengths.length * maxBlocks + 1;
        int rows = physical * blockSize;
        int[] table = new int[lengths.length * maxBlocks];
        Arrays.fill(table, -1);
        int next = 0;
        for (int seq = 0; seq < lengths.length; seq++) {
            for (int blk = 0; blk * blockSize < lengths[seq]; blk++) {
                table[seq * maxBlocks + blk] = (next++ * 5 + 2) % physical;  // 5 is prime to every physical here
            }
        }
        List<int[]> queries = new ArrayList<>();  // (sequence, position)
        for (int seq = 0; seq < lengths.length; seq++) {
            for (int p : new int[] {lengths[seq] - 1, 0, blockSize - 1, blockSize}) {
                if (p < lengths[seq]) {
                    queries.add(new int[] {seq, p});
                }
            }
        }
        for (int p = 70; p < 77; p++) {
            queries.add(new int[] {2, p});
        }
        int m = queries.size();
        int[] querySeq = queries.stream().mapToInt(x -> x[0]).toArray();
        int[] queryPos = queries.stream().mapToInt(x -> x[1]).toArray();
        SplittableRandom random = new SplittableRandom(99 + h * 31 + d + splits);
        float[] q = bf16Floats(random, m * h * d, 1.5f), k = bf16Floats(random, rows * kvh * d, 1.5f);
        float[] v = bf16Floats(random, rows * kvh * d, 1f);
        assertEquals(-1, table[0 * maxBlocks + 1], "sequence 0 holds one block");
        try (Backend backend = DeviceUnderTest.openOrSkip(spec()); CpuBackend cpu = new CpuBackend(2)) {
            CudaBackend cuda = (CudaBackend) backend;
            List<Tensor> tensors = new ArrayList<>();
            try {
                Tensor cq = typed(cuda, tensors, dtype, q, m, h, d), ck = typed(cuda, tensors, dtype, k, rows, kvh, d);
                Tensor cv = typed(cuda, tensors, dtype, v, rows, kvh, d);
                Tensor ct = add(tensors, cuda.fromHost(table, lengths.length, maxBlocks));
                Tensor cs = add(tensors, cuda.fromHost(querySeq, m)), cp = add(tensors, cuda.fromHost(queryPos, m));
                Tensor fast = add(tensors, cuda.allocate(dtype, m, h, d));
                Tensor again = add(tensors, cuda.allocate(dtype, m, h, d));
                Tensor simple = add(tensors, cuda.allocate(dtype, m, h, d));
                cuda.attentionCachedForwardSplits(fast, cq, ck, cv, ct, cs, cp, blockSize, window, splits);
                cuda.attentionCachedForwardSplits(again, cq, ck, cv, ct, cs, cp, blockSize, window, splits);
                cuda.attentionCachedForwardSimple(simple, cq, ck, cv, ct, cs, cp, blockSize, window);
                Tensor out = add(tensors, cpu.allocate(DType.F32, m, h, d));
                cpu.attentionCachedForward(out, add(tensors, cpu.fromHost(q, m, h, d)),
                        add(tensors, cpu.fromHost(k, rows, kvh, d)), add(tensors, cpu.fromHost(v, rows, kvh, d)),
                        add(tensors, cpu.fromHost(table, lengths.length, maxBlocks)),
                        add(tensors, cpu.fromHost(querySeq, m)), add(tensors, cpu.fromHost(queryPos, m)), blockSize,
                        window);
                float[] expected = cpu.read(out), fastOut = cuda.read(fast), simpleOut = cuda.read(simple);
                float maxV = 0;
                for (float x : v) {
                    maxV = Math.max(maxV, Math.abs(x));
                }
                double simpleWorst = 0;
                for (int i = 0; i < expected.length; i++) {
                    double error = Math.abs(simpleOut[i] - expected[i]);
                    double bound = 0x1p-8 * (Math.abs(expected[i]) + maxV) * (dtype == DType.F32 ? 1e-5 : 1) + 1e-6;
                    if (!(error <= bound)) {
                        throw new AssertionError("simple out[" + i + "] = " + simpleOut[i] + ", cpu " + expected[i]
                                + ", bound " + bound);
                    }
                    simpleWorst = Math.max(simpleWorst, error);
                }
                double fastBound = 2 * simpleWorst + 1e-6;
                for (int i = 0; i < expected.length; i++) {
                    if (!(Math.abs(fastOut[i] - expected[i]) <= fastBound)) {
                        throw new AssertionError("decode out[" + i + "] = " + fastOut[i] + ", cpu " + expected[i]
                                + ", simple " + simpleOut[i] + ", bound 2 x simple's worst error " + fastBound);
                    }
                }
                assertArrayEquals(fastOut, cuda.read(again), "two runs of the decode kernel, bit for bit");
            } finally {
                tensors.forEach(Tensor::close);
            }
        }
    }

    private static Tensor typed(Backend backend, List<Tensor> tensors, DType dtype, float[] values, int... shape) {
        Tensor tensor = add(tensors, backend.allocate(dtype, shape));
        backend.write(tensor, values);
        return tensor;
    }

    private static Tensor add(List<Tensor> tensors, Tensor tensor) {
        tensors.add(tensor);
        return tensor;
    }

    private static Tensor bf16(Backend backend, List<Tensor> tensors, float[] values, int... shape) {
        Tensor tensor = add(tensors, backend.allocate(DType.BF16, shape));
        backend.write(tensor, values);
        return tensor;
    }

    /** Random floats bf16 holds exactly, so that the CPU's fp32 run sees the kernels' inputs. */
    private static float[] bf16Floats(SplittableRandom random, int n, float scale) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = BFloat16.toFloat(BFloat16.fromFloat((float) ((random.nextDouble() * 2 - 1) * scale)));
        }
        return values;
    }

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
