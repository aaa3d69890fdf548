package spin.cli;

import picocli.CommandLine.Command;
import spin.train.Trainer;

@Command(name = "sft", mixinStandardHelpOptions = true,
        description = {"Supervised fine-tuning on the real answers of SPIN records (cross-entropy over answer tokens), "
                + "with the same trainer, config keys and outputs as spin train: the way to make a starting model."})
public final class SftCommand extends TrainingCommand {
    @Override
    Trainer.Mode mode() {
        return Trainer.Mode.SFT;
    }
}
