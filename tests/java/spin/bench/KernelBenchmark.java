package spin.bench;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import spin.backend.Backend;
import spin.backend.DeviceSpec;
import spin.backend.Devices;
import spin.backend.Precision;

/**
 * Every {@link KernelCases} case through the Backend on a device (default {@code cuda}: our CUDA
 * kernels and cuBLASLt), one JMH benchmark per case. JMH's own score is the host time of one timed
 * run (queueing, the kernels, and the wait for the end event); the figure that matters is the
 * secondary {@code deviceMillis} / {@code runs}: device time from CUDA events on the compute
 * stream, which {@link #main} turns into {@link KernelBench}'s table (median over iterations).
 *
 * <p>{@code scale} 0 means the device's default ({@link KernelShapes#defaultScale}: full
 * Mistral-7B shapes on a GPU, scaled down on {@code cuda-emu}). {@code KernelBenchmarkTest} runs
 * every case once on {@code cuda-emu} in each build, so the benchmarks cannot rot.
 *
 * <pre>
 *   java -cp target/test-classes:target/classes:$(cat target/test-classpath.txt) spin.bench.KernelBenchmark [JMH options]
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class KernelBenchmark {

    /** Must equal {@link KernelCases#names()} (JMH needs the values as constants; the test checks them). */
    @Param({
        "matmul.qkv.fwd", "matmul.qkv.bwd", "matmul.qo.fwd", "matmul.qo.bwd", "matmul.gate_up.fwd", "matmul.gate_up.bwd",
        "matmul.down.fwd", "matmul.down.bwd", "matmul.lm_head.fwd", "matmul.lm_head.bwd",
        "attention.causal.t512.fwd", "attention.causal.t512.fwdbwd", "attention.causal.t1024.fwd",
        "attention.causal.t1024.fwdbwd", "attention.causal.t2048.fwd", "attention.causal.t2048.fwdbwd",
        "attention.causal.t4096.fwd", "attention.causal.t4096.fwdbwd",
        "attention.window.t512.fwd", "attention.window.t512.fwdbwd", "attention.window.t1024.fwd",
        "attention.window.t1024.fwdbwd", "attention.window.t2048.fwd", "attention.window.t2048.fwdbwd",
        "attention.window.t4096.fwd", "attention.window.t4096.fwdbwd",
        "rmsnorm.fwd", "rmsnorm.bwd", "add_then_rmsnorm.fwd", "add_rmsnorm.fwd", "rope.fwd", "rope.bwd",
        "qkv_rope.fwd", "qkv_rope.bwd", "swiglu.fwd", "swiglu.bwd", "logprob.fwd", "logprob.bwd", "row_sum.fwd",
        "adamw.step", "adamw.step_then_cast", "adamw.step_bf16", "adamw.step_clip_then_zero", "adamw.step_clip_zero",
        "cast.f32_to_bf16", "cast.bf16_to_f32",
    })
    public String kernel;

    @Param("cuda")
    public String device;

    @Param("0")
    public int scale;

    private Backend backend;
    private KernelCase.Body body;
    private Backend.WorkTimer timer;

    /** Device time summed over an iteration's runs; JMH reports both sums per iteration. */
    @AuxCounters(AuxCounters.Type.EVENTS)
    @State(Scope.Thread)
    public static class DeviceTime {
        public double deviceMillis;
        public long runs;

        @Setup(Level.Iteration)
        public void reset() {
            deviceMillis = 0;
            runs = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        DeviceSpec spec = DeviceSpec.parse(device);
        backend = Devices.open(spec, 0, Precision.AUTO);
        KernelShapes shapes = KernelShapes.mistral7b(scale == 0 ? KernelShapes.defaultScale(spec) : scale);
        body = KernelCases.named(kernel, shapes, backend.computeType()).setup().open(backend);
        timer = backend.workTimer();
    }

    @Benchmark
    public void run(DeviceTime time) {
        time.deviceMillis += timer.millis(body::run);
        time.runs++;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        timer.close();
        body.close();
        backend.close();
    }

    /** The case of a JMH result, rebuilt from its parameters (for its shape and work). */
    static KernelCase caseOf(RunResult result, Backend backend) {
        var params = result.getParams();
        DeviceSpec spec = DeviceSpec.parse(params.getParam("device"));
        int s = Integer.parseInt(params.getParam("scale"));
        KernelShapes shapes = KernelShapes.mistral7b(s == 0 ? KernelShapes.defaultScale(spec) : s);
        return KernelCases.named(params.getParam("kernel"), shapes, backend.computeType());
    }

    /**
     * A result as a table row: the median over measurement iterations of each iteration's mean
     * device time per run. An iteration without runs or with a non-finite time is an error, not a row.
     */
    static KernelBench.Row rowOf(RunResult result, KernelCase kernel) {
        Collection<IterationResult> iterations = result.getBenchmarkResults().iterator().next().getIterationResults();
        List<Double> means = new ArrayList<>();
        long runs = 0;
        for (IterationResult it : iterations) {
            Result<?> millis = it.getSecondaryResults().get("deviceMillis");
            Result<?> count = it.getSecondaryResults().get("runs");
            if (millis == null || count == null || count.getScore() < 1) {
                throw new IllegalStateException(kernel.name() + ": an iteration reported no device time");
            }
            means.add(millis.getScore() / count.getScore());
            runs += (long) count.getScore();
        }
        double[] values = means.stream().mapToDouble(Double::doubleValue).toArray();
        return new KernelBench.Row(kernel, KernelBench.median(values), Math.toIntExact(runs));
    }

    /** Runs the benchmarks selected by JMH's command-line options and prints KernelBench's table. */
    public static void main(String[] args) throws RunnerException, CommandLineOptionException {
        ChainedOptionsBuilder options = new OptionsBuilder().parent(new CommandLineOptions(args));
        if (new CommandLineOptions(args).getIncludes().isEmpty()) {
            options.include("^" + Pattern.quote(KernelBenchmark.class.getName()) + "\\.");
        }
        Collection<RunResult> results = new Runner(options.build()).run();
        printTable(results);
    }

    /** KernelBench's table of {@code results}, one row per case, with the device's peaks where known. */
    static List<String> printTable(Collection<RunResult> results) {
        List<String> lines = new ArrayList<>();
        if (results.isEmpty()) {
            return lines;
        }
        String device = results.iterator().next().getParams().getParam("device");
        try (Backend backend = Devices.open(DeviceSpec.parse(device), 0, Precision.AUTO)) {
            Optional<DevicePeaks> peaks = DevicePeaks.of(backend.name());
            lines.add(KernelBench.peaksLine(backend.name(), peaks));
            List<KernelBench.Row> rows = new ArrayList<>();
            for (RunResult r : results) {
                rows.add(rowOf(r, caseOf(r, backend)));
            }
            lines.addAll(KernelBench.table(rows, peaks));
        }
        lines.forEach(System.out::println);
        return lines;
    }
}
