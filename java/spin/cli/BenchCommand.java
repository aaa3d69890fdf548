package spin.cli;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;

/** {@code spin bench}: throughput figures for docs/PERFORMANCE.md. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure throughput.",
        subcommands = {BenchCommand.Train.class})
public final class BenchCommand implements Runnable {
    @Spec
    private CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Forward + backward of a random preset model on random tokens, median over iterations. */
    @Command(name = "train", mixinStandardHelpOptions = true,
            description = "Training throughput: forward + backward tokens/s of a preset model on the CPU backend.")
    static final class Train implements Callable<Integer> {
        @Spec
        private CommandSpec spec;

        @Option(names = "--preset", defaultValue = "small", description = "tiny | small | mistral-7b (default ${DEFAULT-VALUE})")
        private String preset;

        @Option(names = "--batch", defaultValue = "4", description = "sequences per step (default ${DEFAULT-VALUE})")
        private int batch;

        @Option(names = "--seq-len", defaultValue = "256", description = "tokens per sequence (default ${DEFAULT-VALUE})")
        private int sequenceLength;

        @Option(names = "--iters", defaultValue = "5", description = "timed iterations after one warm-up (default ${DEFAULT-VALUE})")
        private int iterations;

        @Option(names = "--threads", description = "CPU threads (default: all cores)")
        private Integer threads;

        @Option(names = "--recompute", description = "activation recompute (gradient checkpointing)")
        private boolean recompute;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            MistralConfig config = MistralConfig.preset(preset);
            int t = threads == null ? Runtime.getRuntime().availableProcessors() : threads;
            try (CpuBackend cpu = new CpuBackend(t); MistralModel model = new MistralModel(config, cpu)) {
                ModelCheckpoint.initialize(model, 1);
                model.setActivationRecompute(recompute);
                Random rng = new Random(1);
                int n = batch * sequenceLength;
                int[] ids = rng.ints(n, 0, config.vocabSize()).toArray();
                int[] mask = new int[n];
                Arrays.fill(mask, 1);
                int[] targets = new int[n];
                for (int i = 0; i < n; i++) {
                    targets[i] = (i + 1) % sequenceLength == 0 ? Backend.IGNORE_INDEX : ids[i + 1];
                }
                float[] dLogp = new float[n];
                Arrays.fill(dLogp, -1f / n);
                double[] seconds = new double[iterations];
                try (Tensor idT = cpu.fromHost(ids, batch, sequenceLength); Tensor m = cpu.fromHost(mask, batch, sequenceLength);
                        Tensor tg = cpu.fromHost(targets, batch, sequenceLength);
                        Tensor d = cpu.fromHost(dLogp, batch, sequenceLength)) {
                    for (int i = -1; i < iterations; i++) {
                        long start = System.nanoTime();
                        model.backward(model.forward(idT, m, tg), d);
                        if (i >= 0) {
                            seconds[i] = (System.nanoTime() - start) / 1e9;
                        }
                    }
                }
                Arrays.sort(seconds);
                double median = seconds[iterations / 2];
                out.printf("spin bench train: preset %s, batch %d x %d tokens, %d threads, recompute %s, cpu backend%n",
                        preset, batch, sequenceLength, t, recompute ? "on" : "off");
                out.printf("median %.3f s per step (min %.3f, max %.3f) over %d iterations: %.1f tokens/s%n", median, seconds[0],
                        seconds[iterations - 1], iterations, n / median);
            }
            return 0;
        }
    }
}
