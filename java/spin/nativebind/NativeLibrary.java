package spin.nativebind;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.Properties;

/**
 * Finds and loads {@code libspin_native.so}, the CUDA library built from kernels/ and native/, and
 * on request its CUDA-emulator twin {@code libspin_native_emu.so} (the same sources and C ABI
 * built by the host C++ compiler; its devices are the host CPU, see docs/ARCHITECTURE.md).
 *
 * <p>Where to look: the system property {@code spin.native.dir} (a folder; the spin launcher and
 * the Maven test run set it to target/native), else the environment variable
 * {@code SPIN_NATIVE_LIB} (the library file; {@code SPIN_NATIVE_EMU_LIB} for the emulated one).
 * Whatever happens, loading never throws: the outcome is a {@link Status} that says why the
 * library is absent, so CPU-only use is unaffected. Both libraries may be loaded in one process.
 */
public final class NativeLibrary {
    public static final String FILE_NAME = "libspin_native.so";
    public static final String DIR_PROPERTY = "spin.native.dir";
    public static final String FILE_ENV = "SPIN_NATIVE_LIB";
    public static final String EMULATED_FILE_NAME = "libspin_native_emu.so";
    public static final String EMULATED_FILE_ENV = "SPIN_NATIVE_EMU_LIB";
    /** Written beside the library by CMakeLists.txt and tools/build-native.sh. */
    static final String BUILD_RECORD = "spin-native-build.properties";
    /** Written beside the emulated library by native/emu/emu.cmake. */
    static final String EMULATED_BUILD_RECORD = "spin-emu-build.properties";
    /** Must equal SPIN_ABI_VERSION in native/include/spin_native.h. */
    static final int ABI_VERSION = 7;

    /** The outcome of looking for the library. */
    public sealed interface Status permits Loaded, Absent {
        /** One line for people: where the library is, or why there is none. */
        String describe();
    }

    /** The library is loaded (for the life of the process) from {@code path}. */
    public record Loaded(Path path, String build, SymbolLookup symbols) implements Status {
        @Override
        public String describe() {
            return build.isEmpty() ? path.toString() : path + " (" + build + ")";
        }
    }

    /** No usable library; {@code reason} names the path tried and what to do. */
    public record Absent(String reason) implements Status {
        @Override
        public String describe() {
            return "not available: " + reason;
        }
    }

    private static final Status STATUS = locate(System.getProperty(DIR_PROPERTY), System.getenv(FILE_ENV));

    /** Loaded on first request only, so that processes that never emulate never load it. */
    private static final class Emulated {
        static final Status STATUS =
                locateEmulated(System.getProperty(DIR_PROPERTY), System.getenv(EMULATED_FILE_ENV));
    }

    private NativeLibrary() {}

    /** The process-wide outcome for libspin_native.so, decided once from the system property and environment. */
    public static Status status() {
        return STATUS;
    }

    /**
     * The process-wide outcome for the CUDA emulator's libspin_native_emu.so, found like
     * {@link #status()} (in {@code spin.native.dir}, else at {@code SPIN_NATIVE_EMU_LIB}).
     */
    public static Status emulatedStatus() {
        return Emulated.STATUS;
    }

    /** Looks in {@code nativeDir} when given, else at {@code libraryFile}. */
    static Status locate(String nativeDir, String libraryFile) {
        return locate(nativeDir, libraryFile, FILE_NAME, FILE_ENV, BUILD_RECORD, "CMake and a CUDA compiler");
    }

    /** As {@link #locate(String, String)}, for the emulated library. */
    static Status locateEmulated(String nativeDir, String libraryFile) {
        return locate(nativeDir, libraryFile, EMULATED_FILE_NAME, EMULATED_FILE_ENV, EMULATED_BUILD_RECORD,
                "CMake and a C++ compiler");
    }

    private static Status locate(String nativeDir, String libraryFile, String fileName, String fileEnv,
            String buildRecord, String buildNeeds) {
        if (nativeDir != null && !nativeDir.isBlank()) {
            return open(Path.of(nativeDir).resolve(fileName).toAbsolutePath(), buildRecord, buildNeeds);
        }
        if (libraryFile != null && !libraryFile.isBlank()) {
            return open(Path.of(libraryFile).toAbsolutePath(), buildRecord, buildNeeds);
        }
        return new Absent("location not set: run through the spin launcher, or pass -D" + DIR_PROPERTY
                + "=DIR (the folder holding " + fileName + ") or set " + fileEnv + "=/path/to/" + fileName);
    }

    static Status open(Path library) {
        return open(library, BUILD_RECORD, "CMake and a CUDA compiler");
    }

    private static Status open(Path library, String buildRecord, String buildNeeds) {
        Properties record = readBuildRecord(library.resolveSibling(buildRecord));
        if (!Files.isRegularFile(library)) {
            if ("skipped".equals(record.getProperty("status"))) {
                return new Absent("not built: " + record.getProperty("reason", "the build skipped it") + " (no "
                        + library + ")");
            }
            return new Absent("no " + library + ": build it with `mvn package` (needs " + buildNeeds + ")");
        }
        SymbolLookup symbols;
        try {
            symbols = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException notLoadable) {
            return new Absent(whyNotLoadable(library, record.getProperty("cudart.soname"), notLoadable));
        }
        Optional<Integer> abi = abiVersion(symbols);
        if (abi.isEmpty() || abi.get() != ABI_VERSION) {
            return new Absent("stale build at " + library + ": it has ABI version "
                    + abi.map(String::valueOf).orElse("(none)") + ", this spin needs " + ABI_VERSION
                    + "; rebuild with `mvn package`");
        }
        return new Loaded(library, buildDescription(record), symbols);
    }

    private static String whyNotLoadable(Path library, String cudartSoname, IllegalArgumentException error) {
        if (cudartSoname != null) {
            try (Arena probe = Arena.ofConfined()) {
                SymbolLookup.libraryLookup(cudartSoname, probe);
            } catch (IllegalArgumentException cudartMissing) {
                return cudartSoname + " not loadable, so " + library + " cannot load: install the CUDA runtime or add"
                        + " its lib folder (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH";
            }
        }
        return "cannot load " + library + ": " + error.getMessage() + " (check it with `ldd " + library + "`)";
    }

    private static Optional<Integer> abiVersion(SymbolLookup symbols) {
        return symbols.find("spin_abi_version").map(symbol -> {
            try {
                return (int) Linker.nativeLinker()
                        .downcallHandle(symbol, FunctionDescriptor.of(ValueLayout.JAVA_INT))
                        .invokeExact();
            } catch (Throwable t) {
                throw new IllegalStateException("spin_abi_version failed", t);
            }
        });
    }

    private static String buildDescription(Properties record) {
        if (record.getProperty("asan") != null) {
            return "CUDA emulator built by the host C++ compiler";
        }
        String compiler = record.getProperty("cuda.compiler.version");
        String archs = record.getProperty("cuda.architectures");
        if (compiler == null || archs == null) {
            return "";
        }
        return "built by nvcc " + compiler + " for archs " + archs;
    }

    private static Properties readBuildRecord(Path file) {
        Properties record = new Properties();
        if (Files.isRegularFile(file)) {
            try (InputStream in = Files.newInputStream(file)) {
                record.load(in);
            } catch (IOException unreadable) {
                // The record only improves messages; without it the generic ones remain true.
            }
        }
        return record;
    }
}
