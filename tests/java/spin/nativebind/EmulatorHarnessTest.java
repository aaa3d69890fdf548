package spin.nativebind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Runs the native kernel harness tests/cuda/kernel_tests.cu as built against the CUDA emulator
 * (spin_emu_tests, under AddressSanitizer where the compiler has it): every kernel, the PTX
 * wrappers, and the planted faults, each of which must make its check fail.
 */
class EmulatorHarnessTest {
    private static final long TIMEOUT_SECONDS = 120;

    record Run(int exitCode, String output) {}

    @Test
    void everyKernelPassesTheHarness() throws Exception {
        Run run = run();
        assertEquals(0, run.exitCode(), run.output());
        assertTrue(run.output().contains("PASSED: 0 failure(s)"), run.output());
    }

    @Test
    void plantedMissingSyncthreadsFailsTheBlockSumCheck() throws Exception {
        Run run = run("planted-missing-sync");
        assertEquals(1, run.exitCode(), run.output());
        assertTrue(run.output().contains("FAIL block sum WITHOUT __syncthreads"), run.output());
    }

    @Test
    void plantedMissingCpAsyncWaitFailsTheStagingCheck() throws Exception {
        Run run = run("planted-missing-wait");
        assertEquals(1, run.exitCode(), run.output());
        assertTrue(run.output().contains("FAIL cp.async staging WITHOUT its wait"), run.output());
    }

    @Test
    void plantedOutOfBoundsGlobalWriteIsCaughtByAddressSanitizer() throws Exception {
        requireAddressSanitizer();
        Run run = run("planted-oob-global");
        assertTrue(run.exitCode() != 0 && run.output().contains("AddressSanitizer: heap-buffer-overflow"),
                run.output());
    }

    @Test
    void plantedOutOfBoundsSharedWriteIsCaughtByAddressSanitizer() throws Exception {
        requireAddressSanitizer();
        Run run = run("planted-oob-shared");
        assertTrue(run.exitCode() != 0 && run.output().contains("AddressSanitizer: global-buffer-overflow"),
                run.output());
    }

    private static Path nativeDir() {
        String dir = System.getProperty(NativeLibrary.DIR_PROPERTY);
        assumeTrue(dir != null, "-D" + NativeLibrary.DIR_PROPERTY + " is not set (the Maven test run sets it)");
        return Path.of(dir);
    }

    private static void requireAddressSanitizer() throws IOException {
        Path record = nativeDir().resolve(NativeLibrary.EMULATED_BUILD_RECORD);
        String text = Files.isRegularFile(record) ? Files.readString(record) : "";
        assumeTrue(text.contains("asan=on"), () -> "spin_emu_tests was built without AddressSanitizer ("
                + (text.isEmpty() ? "no " + record : text.strip().replace('\n', ' ')) + ")");
    }

    private static Run run(String... arguments) throws Exception {
        Path harness = nativeDir().resolve("spin_emu_tests");
        assumeTrue(Files.isExecutable(harness), () -> "no " + harness + ": build it with `mvn package` (needs CMake"
                + " and a C++ compiler)");
        String[] command = new String[arguments.length + 1];
        command[0] = harness.toString();
        System.arraycopy(arguments, 0, command, 1, arguments.length);
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        // Read before waiting, so that a full pipe cannot stall the harness.
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError(harness + " did not finish in " + TIMEOUT_SECONDS + " s:\n" + output);
        }
        return new Run(process.exitValue(), output);
    }
}
