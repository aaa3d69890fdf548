package spin.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.DeviceSpec;
import spin.backend.FrozenWeights;
import spin.backend.Tensor;
import spin.bench.DevicePeaks;
import spin.bench.KernelBench;
import spin.bench.KernelCase;
import spin.bench.KernelCases;
import spin.bench.KernelShapes;
import spin.bench.TrainingFlops;
import spin.generate.BatchGenerator;
import spin.generate.GenerationListener;
import spin.generate.GenerationRequest;
import spin.generate.SamplingParams;
import spin.generate.StopCriteria;
import spin.model.KvCache;
import spin.model.MemoryPlan;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.model.ParameterLayout;

/** {@code spin bench}: throughput figures for docs/PERFORMANCE.md. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure throughput.",
        subcommands = {BenchCommand.Train.class, BenchCommand.Generate.class, BenchCommand.Kernels.class})
public final class BenchCommand implements Runnable {
    @Spec
    private CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Forward + backward of a random preset model on random tokens, median over iterations. */
    @Command(name = "train", mixinStandardHelpOptions = true,
            description = "Training throughput: forward + backward tokens/s and MFU of a preset model (any --layers) on any backend.")
    static final class Train implements Callable<Integer> {
        @Spec
        private CommandSpec spec;

        @Option(names = "--preset", defaultValue = "small", description = "tiny | small | mistral-7b (default ${DEFAULT-VALUE})")
        private String preset;

        @Option(names = "--layers", description = "decoder layers instead of the preset's (e.g. 2 at Mistral-7B widths)")
        private Integer layers;

        @Option(names = "--batch", defaultValue = "4", description = "sequences per step (default ${DEFAULT-VALUE})")
        private int batch;

        @Option(names = "--seq-len", defaultValue = "256", description = "tokens per sequence (default ${DEFAULT-VALUE})")
        private int sequenceLength;

        @Option(names = "--iters", defaultValue = "5", description = "timed iterations after one warm-up (default ${DEFAULT-VALUE})")
        private int iterations;

        @Mixin
        private DeviceOptions device;

        @Option(names = "--recompute", description = "activation recompute (gradient checkpointing)")
        private boolean recompute;

        @Mixin
        private LogProbChunkOption logProbChunk;

        @Override
        public Integer call() {
            atLeastOne("--batch", batch);
            atLeastOne("--seq-len", sequenceLength);
            atLeastOne("--iters", iterations);
            PrintWriter out = spec.commandLine().getOut();
            MistralConfig config = presetModel(preset, layers);
            withinPositions(config, "--seq-len", sequenceLength);
            int t = device.threadCount() == 0 ? Runtime.getRuntime().availableProcessors() : device.threadCount();
            try (Backend backend = device.open()) {
                MemoryPlan plan = plan(config, backend.computeType());
                long needed = plan.totalBytesPerGpu();
                if (needed > backend.memoryBytes()) {
                    throw new IllegalArgumentException("--batch " + batch + " x --seq-len " + sequenceLength + " needs "
                            + MemoryPlan.human(needed) + " (weights, gradients and activations of preset " + preset + ") but "
                            + backend.name() + " has " + MemoryPlan.human(backend.memoryBytes()) + "; lower --batch or --seq-len");
                }
                run(out, config, backend, t);
            }
            return 0;
        }

        /** What the benchmarked pass holds, as spin inspect --memory plans it (no optimizer state). */
        private MemoryPlan plan(MistralConfig config, DType computeType) {
            return new MemoryPlan(config, batch, sequenceLength, 1, recompute, 0, logProbChunk.rows(config), computeType);
        }

        private void run(PrintWriter out, MistralConfig config, Backend backend, int t) {
            try (MistralModel model = new MistralModel(config, backend)) {
                ModelCheckpoint.initialize(model, 1);
                model.setActivationRecompute(recompute);
                model.setLogProbChunkRows(logProbChunk.rows(config));
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
                long waitsBefore = 0;
                try (Tensor idT = backend.fromHost(ids, batch, sequenceLength); Tensor m = backend.fromHost(mask, batch, sequenceLength);
                        Tensor tg = backend.fromHost(targets, batch, sequenceLength);
                        Tensor d = backend.fromHost(dLogp, batch, sequenceLength)) {
                    for (int i = -1; i < iterations; i++) {
                        if (i == 0) {
                            waitsBefore = backend.hostSynchronizations().orElse(0);
                        }
                        long start = System.nanoTime();
                        model.backward(model.forward(idT, m, tg), d);
                        // A device queues the step; the time is the device's, not the queueing's.
                        backend.synchronize();
                        if (i >= 0) {
                            seconds[i] = (System.nanoTime() - start) / 1e9;
                        }
                    }
                }
                Arrays.sort(seconds);
                double median = seconds[iterations / 2];
                out.printf("spin bench train: preset %s, %d layers, batch %d x %d tokens, %d threads, recompute %s, log-prob chunk rows %d, "
                        + "%s backend%n", preset, config.numHiddenLayers(), batch, sequenceLength, t, recompute ? "on" : "off", model.logProbChunkRows(),
                        backend.name());
                out.printf("median %.3f s per step (min %.3f, max %.3f) over %d iterations: %.1f tokens/s%n", median, seconds[0],
                        seconds[iterations - 1], iterations, n / median);
                double flops = TrainingFlops.perStep(config, batch, sequenceLength);
                Optional<DevicePeaks> peaks = DevicePeaks.of(backend.name());
                out.printf("model FLOPs %.3g per step (6 per weight and token + attention; recompute not counted): %.1f TFLOP/s%s%n",
                        flops, flops / median / 1e12, peaks.map(p -> String.format(", MFU %.1f%% of %s's %.0f TFLOP/s dense bf16",
                                100 * flops / median / 1e12 / p.bf16Tflops(), p.device(), p.bf16Tflops())).orElse(""));
                MemoryPlan plan = plan(config, backend.computeType());
                backend.memoryUsage().ifPresent(usage -> out.printf(
                        "device memory peak %s; predicted %s (the pool's peak as spin inspect --memory plans it)%n",
                        MemoryPlan.human(usage.peakBytes()), MemoryPlan.human(plan.poolBytesPerGpu())));
                long waits = backend.hostSynchronizations().orElse(0) - waitsBefore;
                backend.hostSynchronizations().ifPresent(total -> out.printf(
                        "host synchronisations per step: %.1f (the timing waits once; more would be the forward or backward waiting)%n",
                        (double) waits / iterations));
            }
        }
    }

    /**
     * Every kernel case of {@link KernelCases} (the list the JMH benchmark runs too), timed on the
     * device by its {@link Backend#workTimer()}: CUDA events on the compute stream. A quick look
     * without JMH; on the emulator and the CPU the shapes are scaled down and the times are not speed.
     */
    @Command(name = "kernels", mixinStandardHelpOptions = true,
            description = "Kernel timings (ms, TFLOP/s or GB/s, % of the device's peak) at Mistral-7B shapes.")
    static final class Kernels implements Callable<Integer> {
        @Spec
        private CommandSpec spec;

        @Mixin
        private DeviceOptions device;

        @Option(names = "--scale", description = "divide Mistral-7B's sizes by this power of two (default: 1 on a GPU, "
                + KernelShapes.TINY_SCALE + " on cuda-emu and the CPU)")
        private Integer scale;

        @Option(names = "--warmups", description = "untimed runs of each case first (default: 3 on a GPU, 0 elsewhere)")
        private Integer warmups;

        @Option(names = "--runs", description = "timed runs of each case; the table gives the median (default: 10 on a GPU, 1 elsewhere)")
        private Integer runs;

        @Option(names = "--filter", description = "only the cases whose name contains a match of this regular expression")
        private String filter;

        @Override
        public Integer call() {
            DeviceSpec where = device.spec();
            boolean gpu = where.kind() == DeviceSpec.Kind.CUDA;
            KernelShapes shapes = KernelShapes.mistral7b(scale == null ? KernelShapes.defaultScale(where) : scale);
            int w = warmups == null ? (gpu ? 3 : 0) : warmups;
            int r = runs == null ? (gpu ? 10 : 1) : runs;
            atLeastOne("--runs", r);
            if (w < 0) {
                throw new IllegalArgumentException("--warmups must be >= 0, got " + w);
            }
            Pattern only = filter == null ? null : Pattern.compile(filter);
            PrintWriter out = spec.commandLine().getOut();
            try (Backend backend = device.open()) {
                List<KernelCase> cases = KernelCases.all(shapes, backend.computeType()).stream()
                        .filter(c -> only == null || only.matcher(c.name()).find()).toList();
                if (cases.isEmpty()) {
                    throw new IllegalArgumentException("--filter " + filter + " matches none of " + KernelCases.names());
                }
                Optional<DevicePeaks> peaks = DevicePeaks.of(backend.name());
                out.printf("spin bench kernels: %s, activations %s, Mistral-7B shapes%s, median of %d run(s) after %d warm-up(s), "
                        + "%s%n", backend.name(), backend.computeType().name().toLowerCase(),
                        shapes.scale() == 1 ? "" : " / " + shapes.scale(), r, w,
                        where.kind() == DeviceSpec.Kind.CPU ? "host wall time" : "timed by CUDA events on the compute stream");
                if (where.kind() != DeviceSpec.Kind.CUDA) {
                    out.println("not a GPU: the times check that every case runs; they are not speed");
                }
                out.println(KernelBench.peaksLine(backend.name(), peaks));
                out.flush();
                for (String line : KernelBench.HEADER) {
                    out.println(line);
                }
                // Row by row, so that a long GPU run shows progress and a failure keeps the rows before it.
                for (KernelCase c : cases) {
                    out.println(KernelBench.measure(backend, c, w, r).format(peaks));
                    out.flush();
                }
            }
            return 0;
        }
    }

    /** The preset's shape, with {@code layers} decoder layers where given (--layers). */
    private static MistralConfig presetModel(String preset, Integer layers) {
        MistralConfig c = MistralConfig.preset(preset);
        if (layers == null) {
            return c;
        }
        atLeastOne("--layers", layers);
        return new MistralConfig(c.vocabSize(), c.hiddenSize(), c.intermediateSize(), layers, c.numAttentionHeads(),
                c.numKeyValueHeads(), c.headDim(), c.maxPositionEmbeddings(), c.rmsNormEps(), c.ropeTheta(),
                c.slidingWindow(), c.tieWordEmbeddings(), c.initializerRange(), c.bosTokenId(), c.eosTokenId());
    }

    /** A size flag of a benchmark: at least one. */
    private static void atLeastOne(String flag, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(flag + " must be >= 1, got " + value);
        }
    }

    /** Tokens of one sequence must fit the preset's positions. */
    private static void withinPositions(MistralConfig config, String flags, long tokens) {
        if (tokens > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException(flags + " (" + tokens + " tokens per sequence) is more than the preset's "
                    + "max_position_embeddings (" + config.maxPositionEmbeddings() + "); lower it");
        }
    }

    /**
     * Greedy generation of a random preset model on random prompts through the batched engine,
     * measured as tools/bench_torch_model.py --mode generate measures PyTorch: one prefill step over
     * all prompts (logits for the last positions only, first token chosen), then {@code newTokens}
     * decode steps of one token per sequence, EOS ignored. Medians over iterations after a warm-up.
     * The weights are frozen for the whole benchmark and packed for the GEMM before the first run,
     * as a long generation run packs them once for all its steps; that one-off cost is printed
     * on its own line.
     */
    @Command(name = "generate", mixinStandardHelpOptions = true,
            description = "Generation throughput: prefill and decode tokens/s of a preset model through the batched engine, on any backend.")
    static final class Generate implements Callable<Integer> {
        @Spec
        private CommandSpec spec;

        @Option(names = "--preset", defaultValue = "small", description = "tiny | small | mistral-7b (default ${DEFAULT-VALUE})")
        private String preset;

        @Option(names = "--layers", description = "decoder layers instead of the preset's (e.g. 2 at Mistral-7B widths)")
        private Integer layers;

        @Option(names = "--batch", defaultValue = "1", description = "sequences decoding together (default ${DEFAULT-VALUE})")
        private int batch;

        @Option(names = "--prompt-len", defaultValue = "32", description = "prompt tokens per sequence (default ${DEFAULT-VALUE})")
        private int promptLength;

        @Option(names = "--new-tokens", defaultValue = "64", description = "decode steps after the prefill (default ${DEFAULT-VALUE})")
        private int newTokens;

        @Option(names = "--iters", defaultValue = "3", description = "timed runs after the warm-up (default ${DEFAULT-VALUE})")
        private int iterations;

        @Option(names = "--warmup-seconds", defaultValue = "10",
                description = "untimed runs for at least this long first (at least one), so that the JIT has compiled "
                        + "the prefill path, which runs only once per run (default ${DEFAULT-VALUE})")
        private double warmupSeconds;

        @Mixin
        private DeviceOptions device;

        /** The backend, when it has {@code needed} bytes of memory; else the error that says which flag to lower. */
        private Backend withRoomFor(Backend backend, long needed) {
            if (needed > backend.memoryBytes()) {
                throw new IllegalArgumentException("--batch " + batch + " sequences of --prompt-len + --new-tokens tokens need "
                        + MemoryPlan.human(needed) + " (the weights and the KV cache of preset " + preset + ") but " + backend.name()
                        + " has " + MemoryPlan.human(backend.memoryBytes()) + "; lower --batch");
            }
            return backend;
        }

        /**
         * Bytes a generation run holds: fp32 master weights, their compute copy where the compute
         * dtype is not F32, and the KV cache of {@code cachedTokens} tokens.
         */
        /** An inference model's weights (fp32, or only the bf16 copy: MistralModel.forInference) and the cache. */
        private static long generationBytes(MistralConfig config, DType computeType, long cachedTokens) {
            long parameters = new ParameterLayout(config).totalSize();
            return parameters * computeType.byteSize() + cachedTokens * KvCache.bytesPerToken(config, computeType);
        }

        @Override
        public Integer call() {
            atLeastOne("--batch", batch);
            atLeastOne("--prompt-len", promptLength);
            atLeastOne("--new-tokens", newTokens);
            atLeastOne("--iters", iterations);
            if (!(warmupSeconds >= 0)) {
                throw new IllegalArgumentException("--warmup-seconds must be >= 0, got " + warmupSeconds);
            }
            PrintWriter out = spec.commandLine().getOut();
            MistralConfig config = presetModel(preset, layers);
            withinPositions(config, "--prompt-len + --new-tokens", (long) promptLength + newTokens);
            int t = device.threadCount() == 0 ? Runtime.getRuntime().availableProcessors() : device.threadCount();
            int blockSize = GenerationOptions.BLOCK_SIZE;
            long cachedTokens = batch * GenerationOptions.blocksFor((long) promptLength + newTokens) * blockSize;
            Random rng = new Random(1);
            List<GenerationRequest> requests = new ArrayList<>();
            for (int i = 0; i < batch; i++) {
                requests.add(new GenerationRequest(i, rng.ints(promptLength, 0, config.vocabSize()).toArray()));
            }
            // The prefill step yields the first token; each decode step one more.
            StopCriteria stop = StopCriteria.length(newTokens + 1);
            double[] prefill = new double[iterations], decode = new double[iterations];
            int warmups;
            long packedBytes;
            double packSeconds;
            try (Backend backend = device.open(); MistralModel model = MistralModel.forInference(config, withRoomFor(backend,
                    generationBytes(config, backend.computeType(), cachedTokens)));
                    KvCache cache = new KvCache(config, backend, blockSize,
                            Math.toIntExact(BatchGenerator.blocksForFullBatch(requests, batch, newTokens + 1, blockSize)));
                    FrozenWeights frozen = model.freezeWeights()) {
                ModelCheckpoint.initialize(model, 1);
                BatchGenerator generator = new BatchGenerator(model, cache, batch, batch * promptLength, SamplingParams.greedy(), stop);
                // As in one long generation run, the weights are packed for the GEMM once, outside the
                // timed steps (generate() nests its own freeze inside this one and reuses the copies).
                long packStart = System.nanoTime();
                packedBytes = frozen.prepare();
                packSeconds = (System.nanoTime() - packStart) / 1e9;
                long warmupEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
                warmups = 0;
                do {
                    run(generator, requests);
                    warmups++;
                } while (System.nanoTime() < warmupEnd);
                for (int i = 0; i < iterations; i++) {
                    List<GenerationListener.StepReport> steps = run(generator, requests);
                    prefill[i] = steps.get(0).nanos() / 1e9;
                    decode[i] = steps.subList(1, steps.size()).stream().mapToLong(GenerationListener.StepReport::nanos).sum() / 1e9;
                }
            }
            Arrays.sort(prefill);
            Arrays.sort(decode);
            double p = prefill[iterations / 2], d = decode[iterations / 2];
            out.printf("spin bench generate: preset %s, %d layers, batch %d, prompt %d tokens, %d new tokens, %d threads, device %s, greedy, "
                    + "%d warm-up runs%n", preset, config.numHiddenLayers(), batch, promptLength, newTokens, t, device.spec(), warmups);
            out.printf("weights: %.1f MiB packed for the GEMM once, in %.3f s (not part of the step times)%n",
                    packedBytes / 1048576.0, packSeconds);
            out.printf("prefill: median %.4f s (min %.4f, max %.4f): %.1f tokens/s%n", p, prefill[0], prefill[iterations - 1],
                    batch * promptLength / p);
            out.printf("decode:  median %.3f s (min %.3f, max %.3f) for %d steps: %.1f tokens/s (%.2f ms per step)%n", d, decode[0],
                    decode[iterations - 1], newTokens, (double) batch * newTokens / d, d * 1e3 / newTokens);
            out.printf("RESULT mode=generate preset=%s batch=%d prompt_len=%d new_tokens=%d threads=%d "
                    + "prefill_tokens_per_s=%.1f decode_tokens_per_s=%.1f%n", preset, batch, promptLength, newTokens, t,
                    batch * promptLength / p, (double) batch * newTokens / d);
            return 0;
        }

        /** One run's steps, checked to be one prefill of every prompt and then the decode steps. */
        private List<GenerationListener.StepReport> run(BatchGenerator generator, List<GenerationRequest> requests) {
            List<GenerationListener.StepReport> steps = new ArrayList<>();
            generator.generate(requests, new GenerationListener() {
                @Override
                public void stepDone(StepReport step) {
                    steps.add(step);
                }
            });
            GenerationListener.StepReport first = steps.get(0);
            if (steps.size() != newTokens + 1 || first.promptTokens() != batch * promptLength || first.decodeTokens() != 0) {
                throw new IllegalStateException("expected one prefill step and " + newTokens + " decode steps, got " + steps);
            }
            return steps;
        }
    }
}
