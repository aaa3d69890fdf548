package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import spin.backend.DeviceUnderTest;
import spin.bench.KernelBench;

/** {@code spin bench kernels}: the table of KernelCases, the same rows the JMH benchmark reports. */
class BenchKernelsCommandTest {

    private static List<String> lines(String out) {
        return Arrays.asList(out.split("\\R"));
    }

    @Test
    void printsTheTableOnTheEmulatorAtTinyShapes() {
        DeviceUnderTest.openOrSkip("cuda-emu:0").close();
        CliRun.Result r = CliRun.run("bench", "kernels", "--device", "cuda-emu", "--filter", "^(rmsnorm|attention\\.window\\.t512\\.)");
        assertEquals(0, r.exitCode(), r.err());
        List<String> lines = lines(r.out());
        assertTrue(lines.get(0).startsWith("spin bench kernels: cuda-emu:0"), lines.get(0));
        assertTrue(lines.get(0).contains("Mistral-7B shapes / 64") && lines.get(0).contains("CUDA events"), lines.get(0));
        assertTrue(lines.get(1).contains("not speed"), lines.get(1));
        assertTrue(lines.get(2).startsWith("no peak figures"), lines.get(2));
        assertEquals(KernelBench.HEADER, lines.subList(3, 5));
        List<String> rows = lines.subList(5, lines.size());
        assertEquals(4, rows.size(), r.out());
        assertTrue(rows.get(0).startsWith("| attention.window.t512.fwd | B=32 T=8 H=4 KVH=1 D=128 window 64 "), rows.get(0));
        assertTrue(rows.get(1).startsWith("| attention.window.t512.fwdbwd | "), rows.get(1));
        assertTrue(rows.get(2).startsWith("| rmsnorm.fwd | N=64 C=64 "), rows.get(2));
        for (String row : rows) {
            assertTrue(row.matches("\\| \\S+ \\| [^|]+ \\| \\d+\\.\\d{4} \\| \\d+\\.\\d (TFLOP/s|GB/s) \\| - \\|"), row);
        }
    }

    @Test
    void runsOnTheCpuByWallClock() {
        CliRun.Result r = CliRun.run("bench", "kernels", "--filter", "^cast\\.", "--runs", "2");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("host wall time"), r.out());
        assertTrue(r.out().contains("| cast.f32_to_bf16 | P=2097152 | "), r.out());
        assertTrue(r.out().contains("| cast.bf16_to_f32 | P=2097152 | "), r.out());
    }

    @Test
    void refusesAFilterThatMatchesNothing() {
        CliRun.Result r = CliRun.run("bench", "kernels", "--filter", "nonesuch");
        assertEquals(1, r.exitCode());
        assertTrue(r.err().contains("matches none of"), r.err());
    }
}
