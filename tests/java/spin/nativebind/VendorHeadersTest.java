package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.abort;

import java.io.IOException;
import java.lang.foreign.MemoryLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The C ABI values that spin hard-codes, checked against NVIDIA's own headers: a C++ program
 * compiled against the headers that tools/vendor-headers.sh unpacks into target/vendor-headers
 * prints each value as the header defines it, and also as the emulator's stand-in defines it
 * (native/emu/cublaslt_abi.h, native/emu/nccl_abi.h, each in a translation unit of its own so
 * that a name the stand-in lacks fails to compile rather than falling back to NVIDIA's). Every
 * header value must equal the Java constant ({@link CublasLtAbi}, {@link CublasException.Status},
 * {@link NcclAbi}) and the stand-in's; for NCCL the header must also declare every function
 * {@link NcclAbi} binds with the signature its downcall assumes.
 *
 * <p>Skipped with the reason when the headers were not fetched (no pip, offline) or no C++
 * compiler is installed.
 */
class VendorHeadersTest {
    private static final Path HEADERS = Path.of(System.getProperty("spin.vendor.headers", "target/vendor-headers"));
    private static final Path STAND_IN_INCLUDE = Path.of("native/emu");
    private static final long C_ENUM_BYTES = JAVA_INT.byteSize();
    private static final String COMPILER = "c++";

    /** A C expression and the value spin's Java side uses for it; {@code java} null: only the stand-in has it. */
    private record Value(String expression, Long java) {}

    @TempDir
    Path work;

    @Test
    void cublasLtValuesOfTheBindingAndTheStandInAreTheHeaders() {
        List<Value> values = new ArrayList<>(List.of(
                new Value("CUBLAS_OP_N", (long) CublasLtAbi.OP_N),
                new Value("CUBLAS_OP_T", (long) CublasLtAbi.OP_T),
                new Value("CUDA_R_32F", (long) CublasLtAbi.R_32F),
                new Value("CUDA_R_16BF", (long) CublasLtAbi.R_16BF),
                new Value("CUBLAS_COMPUTE_32F", (long) CublasLtAbi.COMPUTE_32F),
                new Value("CUBLASLT_MATMUL_DESC_COMPUTE_TYPE", null),
                new Value("CUBLASLT_MATMUL_DESC_SCALE_TYPE", null),
                new Value("CUBLASLT_MATMUL_DESC_TRANSA", (long) CublasLtAbi.MATMUL_DESC_TRANSA),
                new Value("CUBLASLT_MATMUL_DESC_TRANSB", (long) CublasLtAbi.MATMUL_DESC_TRANSB),
                new Value("CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", (long) CublasLtAbi.PREF_MAX_WORKSPACE_BYTES),
                new Value("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES", (long) CublasLtAbi.PREF_MIN_ALIGNMENT_A_BYTES),
                new Value("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES", (long) CublasLtAbi.PREF_MIN_ALIGNMENT_B_BYTES),
                new Value("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES", (long) CublasLtAbi.PREF_MIN_ALIGNMENT_C_BYTES),
                new Value("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES", (long) CublasLtAbi.PREF_MIN_ALIGNMENT_D_BYTES),
                new Value("sizeof(cublasLtMatmulAlgo_t)", CublasLtAbi.MATMUL_ALGO.byteSize()),
                new Value("sizeof(cublasLtMatmulHeuristicResult_t)", CublasLtAbi.HEURISTIC_RESULT.byteSize())));
        for (MemoryLayout field : CublasLtAbi.HEURISTIC_RESULT.memberLayouts()) {
            String name = field.name().orElseThrow();
            values.add(new Value("offsetof(cublasLtMatmulHeuristicResult_t, " + name + ")",
                    CublasLtAbi.HEURISTIC_RESULT.byteOffset(MemoryLayout.PathElement.groupElement(name))));
        }
        // Java passes and receives these enums as int.
        for (String cEnum : List.of("cublasStatus_t", "cublasOperation_t", "cudaDataType", "cublasComputeType_t",
                "cublasLtMatmulDescAttributes_t", "cublasLtMatmulPreferenceAttributes_t")) {
            values.add(new Value("sizeof(" + cEnum + ")", C_ENUM_BYTES));
        }
        for (CublasException.Status status : CublasException.Status.values()) {
            values.add(new Value(status.cName(), (long) status.code));
        }

        List<long[]> evaluated = evaluate(requireHeader("cublaslt", "cublasLt.h"), "cublasLt.h", values, "cublaslt_abi.h",
                "spin_cublaslt");

        List<String> mismatches = new ArrayList<>();
        for (int i = 0; i < values.size(); i++) {
            Value value = values.get(i);
            long header = evaluated.get(i)[0];
            long standIn = evaluated.get(i)[1];
            if (value.java() != null && value.java() != header) {
                mismatches.add(value.expression() + ": the header says " + header + ", Java " + value.java());
            }
            if (standIn != header) {
                mismatches.add(value.expression() + ": the header says " + header + ", the stand-in " + standIn);
            }
        }
        assertTrue(mismatches.isEmpty(), String.join("\n", mismatches));
        report(values.size(), "cublasLt.h");
    }

    @Test
    void ncclValuesOfTheBindingAndTheStandInAreTheHeaders() {
        List<Value> values = new ArrayList<>(List.of(
                new Value("ncclSuccess", (long) NcclAbi.SUCCESS),
                new Value("ncclUnhandledCudaError", (long) NcclAbi.UNHANDLED_CUDA_ERROR),
                new Value("ncclSystemError", (long) NcclAbi.SYSTEM_ERROR),
                new Value("ncclInternalError", (long) NcclAbi.INTERNAL_ERROR),
                new Value("ncclInvalidArgument", (long) NcclAbi.INVALID_ARGUMENT),
                new Value("ncclInvalidUsage", (long) NcclAbi.INVALID_USAGE),
                new Value("ncclRemoteError", (long) NcclAbi.REMOTE_ERROR),
                new Value("ncclInProgress", (long) NcclAbi.IN_PROGRESS),
                new Value("ncclFloat32", (long) NcclAbi.FLOAT32),
                new Value("ncclFloat64", (long) NcclAbi.FLOAT64),
                new Value("ncclBfloat16", (long) NcclAbi.BFLOAT16),
                new Value("ncclSum", (long) NcclAbi.SUM),
                new Value("sizeof(ncclUniqueId)", (long) NcclAbi.UNIQUE_ID_BYTES),
                new Value("NCCL_UNIQUE_ID_BYTES", (long) NcclAbi.UNIQUE_ID_BYTES)));
        // Java passes and receives these enums as int.
        for (String cEnum : List.of("ncclResult_t", "ncclDataType_t", "ncclRedOp_t")) {
            values.add(new Value("sizeof(" + cEnum + ")", C_ENUM_BYTES));
        }

        Path include = requireHeader("nccl", "nccl.h");
        List<long[]> evaluated = evaluate(include, "nccl.h", values, "nccl_abi.h", "spin_nccl");
        List<String> mismatches = new ArrayList<>();
        for (int i = 0; i < values.size(); i++) {
            long header = evaluated.get(i)[0];
            if (values.get(i).java() != header) {
                mismatches.add(values.get(i).expression() + ": the header says " + header + ", Java " + values.get(i).java());
            }
            if (evaluated.get(i)[1] != header) {
                mismatches.add(values.get(i).expression() + ": the header says " + header + ", the stand-in "
                        + evaluated.get(i)[1]);
            }
        }

        // The signatures NcclAbi's downcalls assume (ints for the enums, a 128-byte id by value):
        // each expression is 1 when the header declares the function so.
        List<Value> signatures = new ArrayList<>();
        for (String signature : List.of(
                "ncclGetVersion, ncclResult_t (*)(int*)",
                "ncclGetUniqueId, ncclResult_t (*)(ncclUniqueId*)",
                "ncclCommInitRank, ncclResult_t (*)(ncclComm_t*, int, ncclUniqueId, int)",
                "ncclGroupStart, ncclResult_t (*)()",
                "ncclGroupEnd, ncclResult_t (*)()",
                "ncclAllGather, ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t)",
                "ncclReduceScatter, ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,"
                        + " cudaStream_t)",
                "ncclAllReduce, ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,"
                        + " cudaStream_t)",
                "ncclBroadcast, ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t)",
                "ncclCommAbort, ncclResult_t (*)(ncclComm_t)",
                "ncclCommDestroy, ncclResult_t (*)(ncclComm_t)",
                "ncclCommGetAsyncError, ncclResult_t (*)(ncclComm_t, ncclResult_t*)",
                "ncclCommCount, ncclResult_t (*)(const ncclComm_t, int*)",
                "ncclCommUserRank, ncclResult_t (*)(const ncclComm_t, int*)",
                "ncclGetErrorString, const char* (*)(ncclResult_t)",
                "ncclGetLastError, const char* (*)(ncclComm_t)")) {
            String[] parts = signature.split(", ", 2);
            signatures.add(new Value("std::is_same<decltype(&" + parts[0] + "), " + parts[1] + ">::value", 1L));
        }
        List<long[]> declared = evaluate(include, "nccl.h", signatures, null, null);
        for (int i = 0; i < signatures.size(); i++) {
            if (declared.get(i)[0] != 1) {
                mismatches.add("nccl.h declares another signature than " + signatures.get(i).expression());
            }
        }
        assertTrue(mismatches.isEmpty(), String.join("\n", mismatches));
        report(values.size() + signatures.size(), "nccl.h");
    }

    /** Surefire's console lists skipped tests without the reason, so it is printed here. */
    private static <T> T skip(String reason) {
        System.err.println("[spin vendor headers] skipped: " + reason);
        return abort("header check skipped: " + reason);
    }

    /** Surefire's console shows a passed test by name only; this says what it compared. */
    private static void report(int count, String header) {
        System.out.println("[spin vendor headers] " + count + " values agree with " + HEADERS.resolve("include")
                .resolve(header));
    }

    /** The include folder holding {@code header}, or a skipped test with tools/vendor-headers.sh's reason. */
    private static Path requireHeader(String group, String header) {
        Path include = HEADERS.resolve("include");
        if (Files.isRegularFile(include.resolve(header))) {
            return include;
        }
        Path status = HEADERS.resolve(group + ".status");
        String reason;
        try {
            reason = Files.isRegularFile(status)
                    ? Files.readAllLines(status).getFirst()
                    : "run tools/vendor-headers.sh";
        } catch (IOException unreadable) {
            reason = "unreadable " + status + ": " + unreadable.getMessage();
        }
        return skip("no " + include.resolve(header) + ": " + reason);
    }

    /**
     * Each expression's value per line: [header, stand-in] when there is a {@code standInHeader}
     * (native/emu, its names in {@code standInNamespace}), else [header]. The header's and the
     * stand-in's values come from separate translation units, linked into one program.
     */
    private List<long[]> evaluate(Path include, String header, List<Value> values, String standInHeader,
            String standInNamespace) {
        boolean withStandIn = standInHeader != null;
        String initializers = values.stream()
                .map(value -> "    (long long)(" + value.expression() + "),")
                .collect(Collectors.joining("\n"));
        List<Path> sources = new ArrayList<>();
        sources.add(write("header_values.cpp", "#include <cstddef>\n#include <type_traits>\n#include <" + header + ">\n"
                + "extern const long long header_values[] = {\n" + initializers + "\n};\n"));
        if (withStandIn) {
            sources.add(write("stand_in_values.cpp", "#include <cstddef>\n#include \"" + standInHeader + "\"\n"
                    + "using namespace " + standInNamespace + ";\n"
                    + "extern const long long stand_in_values[] = {\n" + initializers + "\n};\n"));
        }
        sources.add(write("main.cpp", "#include <cstdio>\nextern const long long header_values[];\n"
                + (withStandIn ? "extern const long long stand_in_values[];\n" : "")
                + "int main() {\n    for (int i = 0; i < " + values.size() + "; ++i) {\n"
                + (withStandIn
                        ? "        std::printf(\"%lld %lld\\n\", header_values[i], stand_in_values[i]);\n"
                        : "        std::printf(\"%lld\\n\", header_values[i]);\n")
                + "    }\n}\n"));
        Path program = work.resolve("values");
        requireCompiler();
        List<String> compile = new ArrayList<>(List.of(COMPILER, "-std=c++17", "-I", include.toString(), "-I",
                STAND_IN_INCLUDE.toAbsolutePath().toString(), "-o", program.toString()));
        sources.forEach(source -> compile.add(source.toString()));
        run(compile, "compiling the values against " + include);
        return run(List.of(program.toString()), "running the compiled program").lines()
                .map(line -> Arrays.stream(line.trim().split(" ")).mapToLong(Long::parseLong).toArray())
                .toList();
    }

    private Path write(String name, String text) {
        try {
            return Files.writeString(work.resolve(name), text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AssertionError("cannot write " + name, e);
        }
    }

    /** Skips the test with the reason when there is no C++ compiler to build the program with. */
    private static void requireCompiler() {
        try {
            new ProcessBuilder(COMPILER, "--version").redirectErrorStream(true).start().waitFor();
        } catch (IOException notInstalled) {
            skip("no C++ compiler (" + COMPILER + "): " + notInstalled.getMessage());
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    /** The command's output, or a failure with it. */
    private static String run(List<String> command, String what) {
        try {
            Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(2, TimeUnit.MINUTES) || process.exitValue() != 0) {
                throw new AssertionError(what + " failed:\n" + String.join(" ", command) + "\n" + output);
            }
            return output;
        } catch (IOException | InterruptedException e) {
            throw new AssertionError(what + " failed", e);
        }
    }
}
