package spin.cli;

import picocli.CommandLine.Command;
import spin.train.Trainer;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"SPIN training (the reference's run_spin.py): the model learns to tell the dataset's real answers "
                + "from the opponent's generated ones. Keys as in the reference's YAML; override any with --key=value.",
                "Writes output_dir/metrics.jsonl, output_dir/checkpoint-STEP/ per save_strategy, and the final model "
                        + "into output_dir."})
public final class TrainCommand extends TrainingCommand {
    @Override
    Trainer.Mode mode() {
        return Trainer.Mode.SPIN;
    }
}
