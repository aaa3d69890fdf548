package spin.nativebind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLibraryTest {

    @TempDir
    Path dir;

    @Test
    void withoutLocationTheReasonSaysHowToGiveOne() {
        String reason = absentReason(NativeLibrary.locate(null, null));
        assertTrue(reason.contains("-Dspin.native.dir=") && reason.contains("SPIN_NATIVE_LIB="), reason);
    }

    @Test
    void missingLibraryNamesThePathTried() {
        String reason = absentReason(NativeLibrary.locate(dir.toString(), null));
        assertTrue(reason.contains(dir.resolve("libspin_native.so").toString()), reason);
        assertTrue(reason.contains("mvn package"), reason);
    }

    @Test
    void environmentVariableNamesTheFileWhenThePropertyIsUnset() {
        Path file = dir.resolve("elsewhere").resolve("libspin_native.so");
        assertTrue(absentReason(NativeLibrary.locate(null, file.toString())).contains(file.toString()));
    }

    @Test
    void propertyWinsOverEnvironmentVariable() {
        String reason = absentReason(NativeLibrary.locate(dir.toString(), "/nonexistent/libspin_native.so"));
        assertTrue(reason.contains(dir.toString()) && !reason.contains("/nonexistent"), reason);
    }

    @Test
    void skippedBuildReportsTheBuildsReason() throws IOException {
        Files.writeString(dir.resolve("spin-native-build.properties"),
                "status=skipped\nreason=no CUDA compiler found (nvcc is not on PATH)\n");
        String reason = absentReason(NativeLibrary.locate(dir.toString(), null));
        assertTrue(reason.startsWith("not built: no CUDA compiler found (nvcc is not on PATH)"), reason);
    }

    @Test
    void libraryForAnotherCpuIsReportedWithItsPath() throws IOException {
        Path library = foreignSharedLibrary();
        String reason = absentReason(NativeLibrary.locate(dir.toString(), null));
        assertTrue(reason.startsWith("cannot load " + library), reason);
    }

    @Test
    void libraryWithoutTheSpinAbiIsReportedAsStale() throws IOException {
        Files.copy(someSharedLibrary(), dir.resolve("libspin_native.so"));
        String reason = absentReason(NativeLibrary.locate(dir.toString(), null));
        assertTrue(reason.startsWith("stale build at " + dir.resolve("libspin_native.so")), reason);
        assertTrue(reason.contains("ABI version (none), this spin needs " + NativeLibrary.ABI_VERSION), reason);
    }

    @Test
    void unloadableCudaRuntimeIsNamedAsTheCause() throws IOException {
        foreignSharedLibrary();
        Files.writeString(dir.resolve("spin-native-build.properties"),
                "status=configured\ncudart.soname=libcudart-missing-for-test.so.99\n");
        String reason = absentReason(NativeLibrary.locate(dir.toString(), null));
        assertTrue(reason.startsWith("libcudart-missing-for-test.so.99 not loadable"), reason);
        assertTrue(reason.contains("LD_LIBRARY_PATH"), reason);
    }

    @Test
    void theLibraryThisBuildMadeLoads() throws IOException {
        String nativeDir = System.getProperty(NativeLibrary.DIR_PROPERTY);
        assumeTrue(nativeDir != null, "-Dspin.native.dir is not set (the Maven test run sets it)");
        Path record = Path.of(nativeDir, NativeLibrary.BUILD_RECORD);
        assumeTrue(Files.isRegularFile(record) && Files.readString(record).contains("status=configured"),
                "this build did not compile libspin_native (see " + record + ")");
        NativeLibrary.Status status = NativeLibrary.status();
        NativeLibrary.Loaded loaded = assertInstanceOf(NativeLibrary.Loaded.class, status, status.describe());
        assertEquals(Path.of(nativeDir, NativeLibrary.FILE_NAME).toAbsolutePath(), loaded.path());
    }

    @Test
    void missingEmulatedLibrarySaysItNeedsOnlyACppCompiler() {
        String reason = absentReason(NativeLibrary.locateEmulated(dir.toString(), null));
        assertTrue(reason.contains(dir.resolve("libspin_native_emu.so").toString()), reason);
        assertTrue(reason.contains("C++ compiler"), reason);
    }

    @Test
    void theEmulatedLibraryThisBuildMadeLoads() throws IOException {
        String nativeDir = System.getProperty(NativeLibrary.DIR_PROPERTY);
        assumeTrue(nativeDir != null, "-Dspin.native.dir is not set (the Maven test run sets it)");
        Path record = Path.of(nativeDir, NativeLibrary.EMULATED_BUILD_RECORD);
        assumeTrue(Files.isRegularFile(record), "this build did not configure the CUDA emulator (no " + record + ")");
        NativeLibrary.Status status = NativeLibrary.emulatedStatus();
        NativeLibrary.Loaded loaded = assertInstanceOf(NativeLibrary.Loaded.class, status, status.describe());
        assertEquals(Path.of(nativeDir, NativeLibrary.EMULATED_FILE_NAME).toAbsolutePath(), loaded.path());
        assertTrue(loaded.describe().contains("CUDA emulator"), loaded.describe());
    }

    /** A small shared library every JDK on Linux ships, which has no spin symbols. */
    private static Path someSharedLibrary() {
        Path library = Path.of(System.getProperty("java.home"), "lib", "libsyslookup.so");
        assumeTrue(Files.isRegularFile(library), "this JDK has no " + library);
        return library;
    }

    /**
     * libspin_native.so in the temp folder as a well-formed shared library for another CPU: a copy
     * of {@link #someSharedLibrary()} with the ELF header's machine field changed.
     */
    private Path foreignSharedLibrary() throws IOException {
        byte[] elf = Files.readAllBytes(someSharedLibrary());
        int machineOffset = 18;
        int x86_64 = 0x3e;
        int aarch64 = 0xb7;
        elf[machineOffset] = (byte) (elf[machineOffset] == x86_64 ? aarch64 : x86_64);
        elf[machineOffset + 1] = 0;
        return Files.write(dir.resolve("libspin_native.so"), elf);
    }

    private static String absentReason(NativeLibrary.Status status) {
        return assertInstanceOf(NativeLibrary.Absent.class, status, status.describe()).reason();
    }
}
