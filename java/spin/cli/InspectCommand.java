package spin.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import spin.backend.DType;
import spin.backend.Precision;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import spin.io.SafetensorsCheckpoint;
import spin.io.SafetensorsFile;
import spin.io.TensorEntry;
import spin.model.MemoryPlan;
import spin.model.MistralConfig;
import spin.model.ModelCheckpoint;

/** {@code spin inspect}: what a model directory or safetensors file holds, whether it is valid, and what training it needs. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "List the tensors of a model directory or .safetensors file, validate it, and with --memory "
                + "report the memory a training run needs.")
public final class InspectCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Parameters(arity = "0..1", paramLabel = "PATH", description = "HF model directory or .safetensors file")
    private Path path;

    @Option(names = "--preset", description = "inspect a preset config instead of a path: tiny | small | mistral-7b")
    private String preset;

    @Option(names = "--memory", description = "report parameter and activation memory for training")
    private boolean memory;

    @Option(names = "--batch", defaultValue = "8", description = "micro-batch size per GPU for --memory (default ${DEFAULT-VALUE})")
    private int batch;

    @Option(names = "--seq-len", defaultValue = "1024", description = "sequence length for --memory (default ${DEFAULT-VALUE})")
    private int sequenceLength;

    @Option(names = {"--gpus", "--devices"}, defaultValue = "8", description = "GPUs of the run for --memory (as train's "
            + "--gpus / --devices): 1 plans the model resident on one GPU, more one ZeRO-3 rank of that many (default ${DEFAULT-VALUE})")
    private int gpus;

    @Option(names = "--zero", description = "plan a ZeRO-3 rank even on one GPU (as spin train runs when given ranks)")
    private boolean zero;

    @Option(names = "--precision", defaultValue = "bf16",
            description = "compute dtype the plan assumes: bf16 (a GPU's own) or fp32 (default ${DEFAULT-VALUE})")
    private String precision;

    @Option(names = "--no-recompute", description = "plan without activation recompute (gradient checkpointing)")
    private boolean noRecompute;

    @Option(names = "--optimizer-states", defaultValue = "1",
            description = "fp32 optimizer buffers per parameter: 1 for RMSprop, 2 for AdamW (default ${DEFAULT-VALUE})")
    private int optimizerStates;

    @Mixin
    private LogProbChunkOption logProbChunk;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        if ((path == null) == (preset == null)) {
            throw new IllegalArgumentException("give either a PATH or --preset");
        }
        MistralConfig config = preset != null ? MistralConfig.preset(preset) : null;
        if (path != null) {
            config = inspectPath(out, path);
        }
        if (memory) {
            if (config == null) {
                throw new IllegalArgumentException("--memory needs a model directory with config.json, or --preset");
            }
            out.println();
            out.print(new MemoryPlan(config, batch, sequenceLength, gpus, !noRecompute, optimizerStates, logProbChunk.rows(config),
                    Precision.parse(precision).computeType(DType.BF16), zero || gpus > 1).report());
        }
        out.flush();
        return 0;
    }

    /** Lists and validates; returns the config when {@code path} is a model directory. */
    private static MistralConfig inspectPath(PrintWriter out, Path path) throws IOException {
        if (Files.isDirectory(path)) {
            MistralConfig config = MistralConfig.read(path);
            out.println("Config: " + config);
            try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(path)) {
                long count = list(out, checkpoint.tensors());
                out.printf("Parameters: %,d in %d tensors%n", count, checkpoint.tensors().size());
                ModelCheckpoint.checkTensors(path, checkpoint, config);
            }
            out.println("Validation: OK (headers, offsets and shapes agree with config.json)");
            return config;
        }
        try (SafetensorsFile file = SafetensorsFile.open(path)) {
            Map<String, TensorEntry> byName = new java.util.LinkedHashMap<>();
            file.tensors().forEach(t -> byName.put(t.name(), t));
            long count = list(out, byName);
            out.printf("Parameters: %,d in %d tensors%n", count, byName.size());
        }
        out.println("Validation: OK (header, offsets and sizes)");
        return null;
    }

    private static long list(PrintWriter out, Map<String, TensorEntry> tensors) {
        long total = 0;
        for (TensorEntry t : tensors.values()) {
            out.printf("  %-60s %-5s %s%n", t.name(), t.dtype(), Arrays.toString(t.shape()));
            total += t.elementCount();
        }
        return total;
    }
}
