package spin.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import spin.backend.Backend;
import spin.backend.DType;

/**
 * Times {@link KernelCases} on a backend with its {@link Backend#workTimer()} (CUDA events on the
 * compute stream of a CudaBackend) and formats the table that {@code spin bench kernels}, the JMH
 * benchmark's report and docs/PERFORMANCE.md share. tools/bench_torch_gpu.py prints its PyTorch
 * peers in the same columns under the same row names, so the two tables line up row for row.
 */
public final class KernelBench {
    private KernelBench() {}

    /** The table's header lines (markdown, so a report pastes into PERFORMANCE.md as it is). */
    public static final List<String> HEADER = List.of(
            "| kernel | shape | ms | rate | % of peak |",
            "| --- | --- | ---: | ---: | ---: |");

    /** One case's result: the median device time of one run of its body. */
    public record Row(KernelCase kernel, double medianMillis, int runs) {
        public Row {
            if (!(medianMillis >= 0) || Double.isInfinite(medianMillis)) {
                throw new IllegalArgumentException(kernel.name() + ": time " + medianMillis + " ms is not a time");
            }
        }

        /** TFLOP/s for a compute-bound case, GB/s for a memory-bound one. */
        public double rate() {
            KernelCase.Work w = kernel.work();
            return w.computeBound() ? w.flops() / medianMillis / 1e9 : w.bytes() / medianMillis / 1e6;
        }

        public String unit() {
            return kernel.work().computeBound() ? "TFLOP/s" : "GB/s";
        }

        /** The rate as a fraction of the device's peak (dense BF16 or FP32 TFLOP/s, or HBM), where known. */
        public Optional<Double> fractionOfPeak(Optional<DevicePeaks> peaks) {
            return peaks.map(p -> {
                KernelCase.Work w = kernel.work();
                if (!w.computeBound()) {
                    return rate() / (p.hbmTerabytesPerSecond() * 1e3);
                }
                return rate() / (w.flopType() == DType.BF16 ? p.bf16Tflops() : p.fp32Tflops());
            });
        }

        /** One markdown row: name, shape, ms, rate with its unit, and % of peak or "-". */
        public String format(Optional<DevicePeaks> peaks) {
            return String.format(Locale.ROOT, "| %s | %s | %.4f | %.1f %s | %s |", kernel.name(), kernel.shape(), medianMillis,
                    rate(), unit(), fractionOfPeak(peaks).map(f -> String.format(Locale.ROOT, "%.1f%%", 100 * f)).orElse("-"));
        }
    }

    /**
     * Opens {@code kernel} on {@code backend}, runs it {@code warmups} times untimed, then
     * {@code runs} times each timed alone, and returns the median (the upper one of an even count).
     */
    public static Row measure(Backend backend, KernelCase kernel, int warmups, int runs) {
        if (runs < 1 || warmups < 0) {
            throw new IllegalArgumentException("runs must be >= 1 and warm-ups >= 0, got " + runs + " and " + warmups);
        }
        double[] millis = new double[runs];
        try (KernelCase.Body body = kernel.setup().open(backend); Backend.WorkTimer timer = backend.workTimer()) {
            for (int i = 0; i < warmups; i++) {
                body.run();
            }
            for (int i = 0; i < runs; i++) {
                millis[i] = timer.millis(body::run);
            }
        }
        return new Row(kernel, median(millis), runs);
    }

    /** Times every case of {@code cases} in turn (one case's operands at a time on the device). */
    public static List<Row> measureAll(Backend backend, List<KernelCase> cases, int warmups, int runs) {
        List<Row> rows = new ArrayList<>();
        for (KernelCase c : cases) {
            rows.add(measure(backend, c, warmups, runs));
        }
        return rows;
    }

    /** The median of {@code values} (the upper middle one for an even count). */
    public static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /** The header and one line per row. */
    public static List<String> table(List<Row> rows, Optional<DevicePeaks> peaks) {
        List<String> lines = new ArrayList<>(HEADER);
        for (Row r : rows) {
            lines.add(r.format(peaks));
        }
        return lines;
    }

    /** A line saying which peaks the fractions are of, or why there are none. */
    public static String peaksLine(String deviceName, Optional<DevicePeaks> peaks) {
        return peaks.map(p -> String.format(Locale.ROOT, "peaks of %s: %.0f TFLOP/s dense bf16, %.0f TFLOP/s fp32, %.2f TB/s HBM",
                p.device(), p.bf16Tflops(), p.fp32Tflops(), p.hbmTerabytesPerSecond()))
                .orElse("no peak figures for " + deviceName + ": no % of peak");
    }
}
