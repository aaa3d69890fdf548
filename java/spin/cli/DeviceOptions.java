package spin.cli;

import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;
import spin.backend.Backend;
import spin.backend.DeviceSpec;
import spin.backend.Precision;
import spin.backend.Devices;

/** The flags every command that computes shares: which device, its precision, and how many CPU threads. */
final class DeviceOptions {
    @Option(names = "--device", description = "cpu, cuda, cuda:N (GPU N) or cuda-emu[:N] (default: cpu)")
    String device;

    @Option(names = "--threads", description = "CPU threads (default: all cores)")
    Integer threads;

    @Option(names = "--precision", description = "compute dtype: auto (fp32 on the CPU, bf16 on a GPU), fp32 or bf16")
    String precision;

    DeviceSpec spec() {
        return device == null ? DeviceSpec.CPU : DeviceSpec.parse(device);
    }

    Precision precision() {
        return precision == null ? Precision.AUTO : Precision.parse(precision);
    }

    /** CPU threads, 0 meaning every core. */
    int threadCount() {
        return threads == null ? 0 : threads;
    }

    /** A backend on the device; one that cannot be opened is an error naming it and why. */
    Backend open() {
        return Devices.open(spec(), threadCount(), precision());
    }

    /** The flags that were given, as arguments for a command run in-process (iterate, demo). */
    List<String> arguments() {
        List<String> out = new ArrayList<>();
        if (device != null) {
            out.addAll(List.of("--device", device));
        }
        if (threads != null) {
            out.addAll(List.of("--threads", threads.toString()));
        }
        if (precision != null) {
            out.addAll(List.of("--precision", precision));
        }
        return out;
    }
}
