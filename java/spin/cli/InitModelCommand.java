package spin.cli;

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

/** {@code spin init-model}: a randomly initialised Mistral model directory that HF transformers can load. */
@Command(name = "init-model", mixinStandardHelpOptions = true,
        description = "Write a randomly initialised Mistral model (config.json + safetensors) with HF's initialisation.")
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

    @Override
    public Integer call() throws Exception {
        MistralConfig config = MistralConfig.preset(preset);
        StorageType storage = switch (dtype) {
            case "bf16" -> StorageType.BF16;
            case "f32" -> StorageType.F32;
            default -> throw new IllegalArgumentException("--dtype must be bf16 or f32, got \"" + dtype + "\"");
        };
        ModelCheckpoint.writeInitialized(config, out, storage, seed, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        spec.commandLine().getOut().printf("Wrote %s model (%,d parameters, %s, seed %d) to %s%n", preset,
                new ParameterLayout(config).totalSize(), dtype, seed, out);
        return 0;
    }
}
