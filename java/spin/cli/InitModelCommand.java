package spin.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.model.MistralConfig;
import spin.model.ModelCheckpoint;
import spin.model.ModelCheckpoint.StorageType;
import spin.model.ParameterLayout;
import spin.text.DemoTokenizer;

/** {@code spin init-model}: a randomly initialised Mistral model directory that HF transformers can load. */
@Command(name = "init-model", mixinStandardHelpOptions = true,
        description = "Write a randomly initialised Mistral model (config.json + safetensors) with HF's initialisation; "
                + "for the tiny preset also a demo tokenizer.")
public final class InitModelCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--preset", required = true, description = "tiny | small | mistral-7b")
    private String preset;

    @Option(names = "--out", required = true, description = "output directory")
    private Path out;

    @Option(names = "--seed", defaultValue = "42", description = "random seed (default ${DEFAULT-VALUE})")
    private long seed;

    @Option(names = "--dtype", defaultValue = "bf16", description = "storage type: bf16 | f32 (default ${DEFAULT-VALUE})")
    private String dtype;

    @Option(names = "--demo-tokenizer",
            description = "also write the small demo tokenizer (always done for tiny; real models bring Mistral's)")
    private boolean demoTokenizer;

    @Override
    public Integer call() throws Exception {
        MistralConfig config = MistralConfig.preset(preset);
        StorageType storage = switch (dtype) {
            case "bf16" -> StorageType.BF16;
            case "f32" -> StorageType.F32;
            default -> throw new IllegalArgumentException("--dtype must be bf16 or f32, got \"" + dtype + "\"");
        };
        ModelCheckpoint.writeInitialized(config, out, storage, seed, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        PrintWriter stdout = spec.commandLine().getOut();
        stdout.printf("Wrote %s model (%,d parameters, %s, seed %d) to %s%n", preset,
                new ParameterLayout(config).totalSize(), dtype, seed, out);
        if (demoTokenizer || preset.equals("tiny")) {
            int vocab = Math.min(DemoTokenizer.DEFAULT_VOCAB_SIZE, config.vocabSize());
            DemoTokenizer.write(out, vocab, config.maxPositionEmbeddings());
            stdout.printf("Wrote the demo tokenizer (%d tokens, zephyr chat template) to %s%n", vocab, out);
        }
        return 0;
    }
}
