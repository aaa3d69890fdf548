package spin.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceUnderTest;
import spin.backend.Precision;
import spin.backend.Tensor;

/**
 * The kernel benchmarks must not rot: every case runs once, through JMH, on {@code cuda-emu} at the
 * emulator's scale, and each must yield a finite positive device time and a well-formed table row.
 * The times themselves are not checked (the emulator's are not speed; speed is in PERFORMANCE.md).
 */
class KernelBenchmarkTest {
    private static final Pattern ROW = Pattern.compile(
            "\\| [a-z0-9_.]+ \\| [^|]+ \\| \\d+\\.\\d{4} \\| \\d+\\.\\d (TFLOP/s|GB/s) \\| (-|\\d+\\.\\d%) \\|");

    @Test
    void jmhParametersAreTheCaseList() throws NoSuchFieldException {
        String[] jmh = KernelBenchmark.class.getField("kernel").getAnnotation(Param.class).value();
        assertEquals(KernelCases.names(), Arrays.asList(jmh), "KernelBenchmark's @Param list must be KernelCases.names()");
        assertEquals(KernelCases.names().size(), KernelCases.names().stream().distinct().count(), "names are unique");
    }

    @Test
    void everyCaseRunsOnceUnderJmhOnTheEmulator() throws Exception {
        DeviceUnderTest.openOrSkip("cuda-emu:0").close();
        // Other builds on the machine may run JMH too; its lock file is for forked runs on one box.
        System.setProperty("jmh.ignoreLock", "true");
        Collection<RunResult> results = new Runner(new OptionsBuilder()
                .include("^" + Pattern.quote(KernelBenchmark.class.getName()) + "\\.")
                .param("device", "cuda-emu:0")
                .forks(0)
                .warmupIterations(0)
                .measurementIterations(1)
                .measurementTime(TimeValue.milliseconds(1))
                .shouldFailOnError(true)
                .build()).run();
        assertEquals(KernelCases.names(), results.stream().map(r -> r.getParams().getParam("kernel")).sorted(
                java.util.Comparator.comparingInt(KernelCases.names()::indexOf)).toList());
        for (RunResult r : results) {
            double host = r.getPrimaryResult().getScore();
            assertTrue(Double.isFinite(host) && host > 0, r.getParams().getParam("kernel") + ": JMH score " + host);
        }
        List<String> table = KernelBenchmark.printTable(results);
        assertTrue(table.get(0).startsWith("no peak figures for cuda-emu:0"), table.get(0));
        assertEquals(KernelBench.HEADER, table.subList(1, 3));
        assertEquals(KernelCases.names().size(), table.size() - 3);
        for (String line : table.subList(3, table.size())) {
            assertTrue(ROW.matcher(line).matches(), line);
            // No device peaks on the emulator: the fraction column must say so, not guess.
            assertTrue(line.endsWith("| - |"), line);
        }
        for (RunResult r : results) {
            try (Backend backend = DeviceUnderTest.openOrSkip("cuda-emu:0", Precision.AUTO)) {
                KernelBench.Row row = KernelBenchmark.rowOf(r, KernelBenchmark.caseOf(r, backend));
                assertTrue(Double.isFinite(row.medianMillis()) && row.medianMillis() > 0, row.kernel().name() + ": " + row.medianMillis());
                assertTrue(Double.isFinite(row.rate()) && row.rate() > 0, row.kernel().name() + ": rate " + row.rate());
                assertTrue(row.runs() >= 1);
            }
        }
    }

    @Test
    void theDeviceTimerWaitsOnceAndTimesTheComputeStream() {
        try (Backend backend = DeviceUnderTest.openOrSkip("cuda-emu:0", Precision.AUTO);
                Backend.WorkTimer timer = backend.workTimer(); Tensor t = backend.allocate(DType.F32, 1 << 16)) {
            long before = backend.hostSynchronizations().orElseThrow();
            double millis = timer.millis(() -> backend.fill(t, 1f));
            assertTrue(Double.isFinite(millis) && millis > 0, "elapsed " + millis);
            assertEquals(before + 1, backend.hostSynchronizations().orElseThrow(), "one wait, for the end event");
            assertEquals(1f, backend.read(t)[12345]);
        }
    }

    @Test
    void peaksAreKnownForH100SxmAndH200Only() {
        DevicePeaks h200 = DevicePeaks.of("cuda:0 (NVIDIA H200)").orElseThrow();
        assertEquals(989, h200.bf16Tflops());
        assertEquals(4.8, h200.hbmTerabytesPerSecond());
        assertEquals(3.35, DevicePeaks.of("NVIDIA H100 80GB HBM3").orElseThrow().hbmTerabytesPerSecond());
        assertEquals(3.35, DevicePeaks.of("NVIDIA H100 SXM5 80GB").orElseThrow().hbmTerabytesPerSecond());
        assertEquals(Optional.empty(), DevicePeaks.of("NVIDIA H100 PCIe"));
        assertEquals(Optional.empty(), DevicePeaks.of("NVIDIA H200 NVL"));
        assertEquals(Optional.empty(), DevicePeaks.of("cuda-emu:0 (spin CUDA emulator)"));
    }

    @Test
    void rowsGiveRateAndFractionOfPeak() {
        Optional<DevicePeaks> h200 = DevicePeaks.of("NVIDIA H200");
        KernelCase gemm = new KernelCase("matmul.x.fwd", "N=1", KernelCase.Work.flops(494.5e9, DType.BF16), b -> null);
        assertEquals("| matmul.x.fwd | N=1 | 1.0000 | 494.5 TFLOP/s | 50.0% |", new KernelBench.Row(gemm, 1.0, 1).format(h200));
        KernelCase fp32 = new KernelCase("f", "s", KernelCase.Work.flops(67e9, DType.F32), b -> null);
        assertEquals("| f | s | 2.0000 | 33.5 TFLOP/s | 50.0% |", new KernelBench.Row(fp32, 2.0, 1).format(h200));
        KernelCase copy = new KernelCase("cast.x", "P=1", KernelCase.Work.bytes(2.4e9), b -> null);
        assertEquals("| cast.x | P=1 | 1.0000 | 2400.0 GB/s | 50.0% |", new KernelBench.Row(copy, 1.0, 1).format(h200));
        assertEquals("| cast.x | P=1 | 1.0000 | 2400.0 GB/s | - |", new KernelBench.Row(copy, 1.0, 1).format(Optional.empty()));
        assertEquals(2.0, KernelBench.median(new double[] {3, 1, 2}));
    }

    @Test
    void attentionFlopsFollowTheConvention() {
        // 4·B·T²·H·D, halved for causal; a window as long as T masks nothing more.
        assertEquals(4.0 * 4 * 4096 * 4096 * 32 * 128 / 2, KernelCases.attentionFlops(4, 4096, 32, 128, 0));
        assertEquals(KernelCases.attentionFlops(4, 4096, 32, 128, 0), KernelCases.attentionFlops(4, 4096, 32, 128, 4096));
        assertEquals(4.0 * 32 * 128 * (8192.0 * 4096 - 4096.0 * 4096 / 2), KernelCases.attentionFlops(1, 8192, 32, 128, 4096));
    }

    @Test
    void shapesAreMistral7bAtScaleOne() {
        KernelShapes full = KernelShapes.mistral7b(1);
        assertEquals(List.of(4096, 14336, 32000, 32, 8, 128, 16384, 4096), List.of(full.hidden(), full.ffn(), full.vocab(),
                full.heads(), full.kvHeads(), full.headDim(), full.attentionTokens(), full.window()));
        assertEquals(List.of(512, 1024, 2048, 4096), full.sequenceLengths());
        KernelShapes tiny = KernelShapes.mistral7b(64);
        assertEquals(List.of(64, 224, 500, 4, 1), List.of(tiny.hidden(), tiny.ffn(), tiny.vocab(), tiny.heads(), tiny.kvHeads()));
        String shape = KernelCases.named("matmul.gate_up.fwd", full, DType.BF16).shape();
        assertEquals("N=4096 4096x14336 bf16", shape);
    }
}
