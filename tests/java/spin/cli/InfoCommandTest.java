package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import spin.nativebind.NativeLibrary;

class InfoCommandTest {
    private static final List<String> LABELS = List.of("Java", "CPU cores", "Vector API", "Native library",
            "CUDA runtime", "CUDA driver", "GPUs", "cuBLASLt", "NCCL", "Devices");

    @Test
    void reportsEveryComponentAndGpusOrWhyNone() {
        List<String> lines = run(Main.commandLine(), "info");

        List<String> topLevel = lines.stream().filter(line -> !line.startsWith("  ")).toList();
        assertEquals(LABELS, topLevel.stream().map(InfoCommandTest::label).toList());
        assertTrue(value(lines, "Vector API").matches("preferred species \\d+ bits, \\d+ float lanes"),
                value(lines, "Vector API"));
        assertTrue(value(lines, "  cpu").endsWith(": available"), value(lines, "  cpu"));
        String emulator = value(lines, "  cuda-emu:0");
        if (NativeLibrary.emulatedStatus() instanceof NativeLibrary.Loaded) {
            assertTrue(emulator.endsWith(": available"), emulator);
        } else {
            assertTrue(emulator.contains("cannot be opened (the CUDA emulator library is unavailable"), emulator);
        }
        String gpus = value(lines, "GPUs");
        if (gpus.startsWith("none")) {
            assertTrue(gpus.matches("none \\(.{10,}\\)"), "no GPU without a reason: " + gpus);
        } else {
            int count = Integer.parseInt(gpus);
            Pattern gpuLine =
                    Pattern.compile("  GPU \\d+: +.+, compute capability \\d+\\.\\d+, \\d+ SMs, .+ GiB memory.*");
            assertEquals(count, lines.stream().filter(line -> gpuLine.matcher(line).matches()).count(), gpus);
        }
    }

    @Test
    void withoutTheNativeLibrarySaysWhyThereAreNoGpus() {
        NativeLibrary.Absent absent = new NativeLibrary.Absent("not built: no CUDA compiler found (test)");
        List<String> lines = run(new CommandLine(new InfoCommand(absent)));

        assertEquals("not available: not built: no CUDA compiler found (test)", value(lines, "Native library"));
        assertEquals("none (native library unavailable: not built: no CUDA compiler found (test))",
                value(lines, "GPUs"));
        assertTrue(value(lines, "CUDA driver").startsWith("unknown"));
    }

    private static List<String> run(CommandLine commandLine, String... args) {
        StringWriter output = new StringWriter();
        commandLine.setOut(new PrintWriter(output));
        int exitCode = commandLine.execute(args);
        assertEquals(0, exitCode, output.toString());
        return Arrays.asList(output.toString().split("\\R"));
    }

    private static String label(String line) {
        return line.substring(0, line.indexOf(':'));
    }

    private static String value(List<String> lines, String label) {
        return lines.stream().filter(line -> line.startsWith(label + ":")).findFirst()
                .map(line -> line.substring(label.length() + 1).strip())
                .orElseThrow(() -> new AssertionError("no line '" + label + ":' in " + lines));
    }
}
