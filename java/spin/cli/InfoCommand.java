package spin.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import spin.backend.Devices;
import spin.nativebind.CublasLt;
import spin.nativebind.CudaException;
import spin.nativebind.CudaRuntime;
import spin.nativebind.DeviceProperties;
import spin.nativebind.NativeLibrary;
import spin.nativebind.Nccl;
import spin.nativebind.VendorLibraryStatus;

/** {@code spin info}: what this machine offers spin, and for whatever is missing, why. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Print the Java runtime, CPU and vector width, native library, CUDA versions, GPUs, "
                + "cuBLASLt and NCCL.")
public final class InfoCommand implements Callable<Integer> {
    private static final double GIB = 1024.0 * 1024 * 1024;

    @Spec
    private CommandSpec spec;

    private final NativeLibrary.Status nativeLibrary;

    public InfoCommand() {
        this(NativeLibrary.status());
    }

    InfoCommand(NativeLibrary.Status nativeLibrary) {
        this.nativeLibrary = nativeLibrary;
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        Runtime.Version version = Runtime.version();
        line(out, "Java", version + " (" + System.getProperty("java.vendor") + "), " + System.getProperty("java.home"));
        line(out, "CPU cores", String.valueOf(Runtime.getRuntime().availableProcessors()));
        VectorSpecies<Float> species = FloatVector.SPECIES_PREFERRED;
        line(out, "Vector API", "preferred species " + species.vectorBitSize() + " bits, " + species.length()
                + " float lanes");
        line(out, "Native library", nativeLibrary.describe());
        switch (nativeLibrary) {
            case NativeLibrary.Loaded loaded -> describeCuda(out, CudaRuntime.load());
            case NativeLibrary.Absent absent -> {
                line(out, "CUDA runtime", "unknown (native library unavailable)");
                line(out, "CUDA driver", "unknown (native library unavailable)");
                line(out, "GPUs", "none (native library unavailable: " + absent.reason() + ")");
            }
        }
        for (VendorLibraryStatus library : List.of(CublasLt.status(), Nccl.status())) {
            line(out, library.library(), library.detail());
        }
        line(out, "Devices", "what --device can open");
        for (Devices.Listing device : Devices.list()) {
            line(out, "  " + device.spec(), device.description()
                    + device.unavailable().map(why -> ": cannot be opened (" + why + ")").orElse(": available"));
        }
        out.flush();
        return 0;
    }

    private static void describeCuda(PrintWriter out, CudaRuntime cuda) {
        line(out, "CUDA runtime", cuda.runtimeVersion().toString());
        line(out, "CUDA driver", cuda.driverVersion().map(Object::toString).orElse("none installed"));
        int count;
        try {
            count = cuda.deviceCount();
        } catch (CudaException e) {
            line(out, "GPUs", "none (" + e.nativeMessage() + ")");
            return;
        }
        line(out, "GPUs", String.valueOf(count));
        for (int device = 0; device < count; device++) {
            line(out, "  GPU " + device, describe(cuda, device));
        }
    }

    private static String describe(CudaRuntime cuda, int device) {
        try {
            DeviceProperties gpu = cuda.deviceProperties(device);
            return String.format("%s, compute capability %s, %d SMs, %.1f GiB memory (%.1f GiB free)", gpu.name(),
                    gpu.computeCapability(), gpu.multiprocessorCount(), gpu.totalMemoryBytes() / GIB,
                    gpu.freeMemoryBytes() / GIB);
        } catch (CudaException e) {
            return "unusable (" + e.nativeMessage() + ")";
        }
    }

    private static void line(PrintWriter out, String label, String value) {
        out.printf("%-16s%s%n", label + ":", value);
    }
}
