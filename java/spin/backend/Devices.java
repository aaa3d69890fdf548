package spin.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import spin.backend.cpu.CpuBackend;
import spin.backend.cuda.CudaBackend;
import spin.nativebind.CudaException;
import spin.nativebind.CudaRuntime;
import spin.nativebind.DeviceProperties;
import spin.nativebind.NativeLibrary;

/**
 * The one factory of compute backends: every command's {@code --device} goes through
 * {@link #open}, and nothing above {@code spin.backend} names a concrete backend. Asking for a
 * device that cannot be opened is an error that says why, never a silent fall-back to the CPU.
 */
public final class Devices {
    private Devices() {}

    /** A device as {@code spin info} lists it: what it is, or why it cannot be opened. */
    public record Listing(DeviceSpec spec, String description, Optional<String> unavailable) {}

    /** A backend on {@code spec} at the device's own precision ({@link Precision#AUTO}). */
    public static Backend open(DeviceSpec spec, int threads) {
        return open(spec, threads, Precision.AUTO);
    }

    /**
     * A backend on {@code spec} computing in {@code precision}.
     *
     * @param threads CPU threads for the CPU backend (0 = every core); ignored by devices
     * @throws IllegalArgumentException naming the device and why it cannot be opened
     */
    public static Backend open(DeviceSpec spec, int threads, Precision precision) {
        if (threads < 0) {
            throw new IllegalArgumentException("--threads must be >= 0 (0 = every core), got " + threads);
        }
        if (spec.kind() == DeviceSpec.Kind.CPU) {
            if (precision.computeType(DType.F32) != DType.F32) {
                throw new IllegalArgumentException("the CPU backend computes in fp32 (it is the reference); --precision "
                        + precision + " needs a CUDA device (--device cuda or cuda-emu)");
            }
            return threads == 0 ? new CpuBackend() : new CpuBackend(threads);
        }
        Optional<String> whyNot = whyNot(spec);
        if (whyNot.isPresent()) {
            throw new IllegalArgumentException("cannot open device " + spec + ": " + whyNot.get() + "; use --device cpu");
        }
        CudaRuntime runtime = spec.kind() == DeviceSpec.Kind.CUDA_EMU ? CudaRuntime.loadEmulated() : CudaRuntime.load();
        return new CudaBackend(runtime, spec, precision.computeType(DType.BF16));
    }

    /** The CPU, each GPU the CUDA runtime reports (or the reason there are none), and the emulator. */
    public static List<Listing> list() {
        List<Listing> out = new ArrayList<>();
        out.add(new Listing(DeviceSpec.CPU, Runtime.getRuntime().availableProcessors() + " cores (the reference backend)",
                Optional.empty()));
        Optional<Integer> gpus = gpuCount();
        for (int i = 0; i < gpus.orElse(0); i++) {
            DeviceSpec gpu = new DeviceSpec(DeviceSpec.Kind.CUDA, i);
            out.add(new Listing(gpu, describe(gpu), whyNot(gpu)));
        }
        if (gpus.orElse(0) == 0) {
            DeviceSpec gpu = new DeviceSpec(DeviceSpec.Kind.CUDA, 0);
            out.add(new Listing(gpu, "a GPU", whyNot(gpu)));
        }
        DeviceSpec emulator = new DeviceSpec(DeviceSpec.Kind.CUDA_EMU, 0);
        out.add(new Listing(emulator, "the CUDA kernels on the CPU emulator (slow; for tests)", whyNot(emulator)));
        return out;
    }

    /** Why {@code spec} (a CUDA device) cannot be opened, or empty when it can. */
    private static Optional<String> whyNot(DeviceSpec spec) {
        if (spec.kind() == DeviceSpec.Kind.CUDA_EMU) {
            if (NativeLibrary.emulatedStatus() instanceof NativeLibrary.Absent absent) {
                return Optional.of("the CUDA emulator library is unavailable (" + absent.reason() + ")");
            }
            // Several emulated devices, so that ranks of one JVM each own one (threads, as on a node).
            int count = CudaRuntime.loadEmulated().deviceCount();
            return spec.index() >= count
                    ? Optional.of("the emulator has " + count + " devices (cuda-emu:0 .. cuda-emu:" + (count - 1) + ")")
                    : Optional.empty();
        }
        if (NativeLibrary.status() instanceof NativeLibrary.Absent absent) {
            return Optional.of("the native library is unavailable (" + absent.reason() + ")");
        }
        int count;
        try {
            count = CudaRuntime.load().deviceCount();
        } catch (CudaException e) {
            return Optional.of("no GPU (" + e.nativeMessage() + ")");
        }
        if (spec.index() >= count) {
            return Optional.of(count == 1 ? "there is 1 GPU (cuda:0)"
                    : "there are " + count + " GPUs (cuda:0 .. cuda:" + (count - 1) + ")");
        }
        return Optional.empty();
    }

    private static String describe(DeviceSpec gpu) {
        DeviceProperties props = CudaRuntime.load().deviceProperties(gpu.index());
        return String.format("%s, %.1f GiB, compute capability %d.%d", props.name(),
                props.totalMemoryBytes() / (double) (1L << 30), props.computeMajor(), props.computeMinor());
    }

    private static Optional<Integer> gpuCount() {
        if (NativeLibrary.status() instanceof NativeLibrary.Absent) {
            return Optional.empty();
        }
        try {
            return Optional.of(CudaRuntime.load().deviceCount());
        } catch (CudaException e) {
            return Optional.empty();
        }
    }
}
