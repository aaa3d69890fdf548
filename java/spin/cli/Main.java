package spin.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code spin} command line. */
@Command(
        name = "spin",
        mixinStandardHelpOptions = true,
        version = "spin 0.1.0",
        description = "Self-Play Fine-Tuning (SPIN) of Mistral-architecture models.",
        subcommands = {InfoCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    private CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    static CommandLine commandLine() {
        return new CommandLine(new Main());
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
