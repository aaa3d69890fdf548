package spin.cli;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;
import spin.train.TrainConfig;
import spin.train.Trainer;

/**
 * {@code spin iterate}: one SPIN iteration, the reference's generate -> convert -> finetune scripts
 * in one command. Every stage is resumable: generation skips complete shards, conversion is
 * idempotent, training continues from its latest checkpoint or accepts a finished run.
 */
@Command(name = "iterate", mixinStandardHelpOptions = true,
        description = {"One SPIN iteration K: the model answers the train and test prompts of --data, the answers are "
                + "converted to SPIN records, mixed with iteration K-1's records, and the model is trained on them.",
                "Outputs under WORK/iterK: generated/ (loser_0*.jsonl), data/ (train_prefs/test_prefs parquet), "
                        + "train/ (checkpoints, metrics.jsonl, the final model). Re-running resumes where it stopped.",
                "Extra --key=value options override training config keys."})
public final class IterateCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--iteration", required = true, description = "iteration number K (0 = the first)")
    private int iteration;

    @Option(names = "--model", required = true, description = "the model p_K that generates and is trained (iteration K-1's WORK/iter{K-1}/train)")
    private Path model;

    @Option(names = "--data", required = true, description = "SPIN records with the real answers (spin reformat's output)")
    private Path data;

    @Option(names = "--work", required = true, description = "working directory of the run")
    private Path work;

    @Option(names = "--config", description = "training config YAML (model_name_or_path, dataset_mixer and output_dir are set by iterate)")
    private Path config;

    @Option(names = "--max-new-tokens", defaultValue = "256", description = "answer length limit (default ${DEFAULT-VALUE})")
    private int maxNewTokens;

    @Option(names = "--prompt-format", defaultValue = "instruction",
            description = "instruction (the reference's generate.py) | chat (the model's chat template, as in training) (default ${DEFAULT-VALUE})")
    private String promptFormat;

    @Option(names = "--generate-batch-size", defaultValue = "16", description = "sequences decoding together (default ${DEFAULT-VALUE})")
    private int generateBatchSize;

    @Mixin
    private DeviceOptions device;

    @Mixin
    private LaunchOptions launch;

    @Unmatched
    private List<String> overrides = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        if (iteration < 0) {
            throw new IllegalArgumentException("--iteration must be >= 0, got " + iteration);
        }
        PrintWriter err = spec.commandLine().getErr();
        Subcommands stages = new Subcommands(spec.commandLine());
        Path dir = work.resolve("iter" + iteration);
        Path generated = dir.resolve("generated"), records = dir.resolve("data"), train = dir.resolve("train");
        for (String split : new String[] {"train", "test"}) {
            err.printf("== iteration %d: generating answers to the %s prompts with %s%n", iteration, split, model);
            List<String> args = new ArrayList<>(List.of("generate", "--model", model.toString(), "--input-dir", data.toString(),
                    "--output-dir", generated.toString(), "--split", split, "--resume", "--max-new-tokens",
                    Integer.toString(maxNewTokens), "--prompt-format", promptFormat, "--batch-size",
                    Integer.toString(generateBatchSize)));
            args.addAll(device.arguments());
            args.addAll(launch.arguments());
            stages.run(args.toArray(String[]::new));
        }
        err.printf("== iteration %d: converting the answers to SPIN records%n", iteration);
        stages.run("convert", "--input-dir", generated.toString(), "--output-dir", records.toString());
        Map<String, Object> set = new LinkedHashMap<>();
        set.put("model_name_or_path", model.toString());
        Map<String, Double> mixer = new LinkedHashMap<>();
        Path previous = work.resolve("iter" + (iteration - 1)).resolve("data");
        if (iteration > 0 && Files.isDirectory(previous)) {
            mixer.put(previous.toString(), 1.0);
        }
        mixer.put(records.toString(), 1.0);
        set.put("dataset_mixer", mixer);
        set.put("output_dir", train.toString());
        String deviceText = launch.device(device.device); // --gpus N means cuda, over a config's device key too
        if (deviceText != null) {
            set.put("device", deviceText);
        }
        if (device.threads != null) {
            set.put("threads", device.threads);
        }
        if (device.precision != null) {
            set.put("precision", device.precision);
        }
        TrainConfig file = config == null ? TrainConfig.of(set, overrides) : TrainConfig.load(config, overrides);
        if (!file.modelPath().equals(model)) {
            // the config's model_revision pins the model it names, not the one this iteration starts from
            set.put("model_revision", null);
        }
        TrainConfig settings = file.with(set);
        err.printf("== iteration %d: training on %s%n", iteration, String.join(" + ", mixer.keySet()));
        Trainer.run(settings, Trainer.Mode.SPIN, true, launch.resolve(settings.device()), err);
        err.printf("== iteration %d done: the next model is %s%n", iteration, train);
        return 0;
    }
}
