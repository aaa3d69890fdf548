package spin.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;
import spin.dist.World;
import spin.train.TrainConfig;
import spin.train.Trainer;

/** {@code spin train} and {@code spin sft}: a YAML config plus {@code --key=value} overrides, run by {@link Trainer}. */
abstract class TrainingCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "CONFIG.yaml", description = "training config in the reference's YAML keys")
    private Path config;

    @Option(names = "--resume", description = "continue from the latest complete checkpoint in output_dir (a finished run is left as it is)")
    private boolean resume;

    @Mixin
    private DeviceOptions device;

    @Mixin
    private LaunchOptions launch;

    @Unmatched
    private List<String> overrides = new ArrayList<>();

    abstract Trainer.Mode mode();

    @Override
    public Integer call() throws Exception {
        // --device, --threads and --precision are the config's keys of those names, given the way every command takes them
        List<String> all = new ArrayList<>(overrides);
        String deviceText = launch.device(device.device); // --gpus N means cuda, over a config's device key too
        if (deviceText != null) {
            all.add("--device=" + deviceText);
        }
        if (device.threads != null) {
            all.add("--threads=" + device.threads);
        }
        if (device.precision != null) {
            all.add("--precision=" + device.precision);
        }
        TrainConfig settings = TrainConfig.load(config, all);
        World world = launch.resolve(settings.device());
        Trainer.run(settings, mode(), resume, world, spec.commandLine().getErr());
        return 0;
    }
}
