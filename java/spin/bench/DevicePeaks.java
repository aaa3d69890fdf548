package spin.bench;

import java.util.Locale;
import java.util.Optional;

/**
 * A device's datasheet peaks, for the benchmarks' "% of peak" column: dense (no sparsity) BF16
 * tensor-core and FP32 (non-tensor) TFLOP/s and HBM bandwidth in TB/s. Only devices whose figures
 * are known are listed; any other device (the emulator included) gets no fraction rather than a
 * guessed one.
 */
public record DevicePeaks(String device, double bf16Tflops, double fp32Tflops, double hbmTerabytesPerSecond) {

    /** The peaks of the device {@code name} (CUDA's device name, or a backend name that contains it). */
    public static Optional<DevicePeaks> of(String name) {
        String n = name.toUpperCase(Locale.ROOT);
        // The NVL (PCIe) H200 and the H100 PCIe have lower clocks, power and bandwidth: not these rows.
        if (n.contains("H200") && !n.contains("NVL")) {
            return Optional.of(new DevicePeaks("H200 SXM", 989, 67, 4.8));
        }
        if (n.contains("H100") && !n.contains("NVL") && (n.contains("SXM") || n.contains("HBM3"))) {
            return Optional.of(new DevicePeaks("H100 SXM", 989, 67, 3.35));
        }
        return Optional.empty();
    }
}
