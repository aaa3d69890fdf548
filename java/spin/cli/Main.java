package spin.cli;

import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code spin} command line. */
@Command(
        name = "spin",
        mixinStandardHelpOptions = true,
        version = "spin 0.1.0",
        description = "Self-Play Fine-Tuning (SPIN) of Mistral-architecture models.",
        subcommands = {InfoCommand.class, InitModelCommand.class, InspectCommand.class, ReformatCommand.class, ConvertCommand.class,
                ScoreCommand.class, GenerateCommand.class, ChatCommand.class, TrainCommand.class, SftCommand.class,
                IterateCommand.class, DemoCommand.class, ReportCommand.class, BenchCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    private CommandLine.Model.CommandSpec spec;

    /** The environment the launch is read from (torchrun's and Slurm's variables); a test injects its own. */
    private final Map<String, String> environment;

    private Main(Map<String, String> environment) {
        this.environment = Map.copyOf(environment);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    static CommandLine commandLine() {
        return commandLine(System.getenv());
    }

    /** The command line reading the launch environment from {@code environment} instead of the process's. */
    static CommandLine commandLine(Map<String, String> environment) {
        CommandLine cli = new CommandLine(new Main(environment));
        cli.setExecutionExceptionHandler(Main::report);
        return cli;
    }

    /** The environment of the {@code spin} command line that {@code cli} (a subcommand's) belongs to. */
    static Map<String, String> environment(CommandLine cli) {
        CommandLine root = cli;
        while (root.getParent() != null) {
            root = root.getParent();
        }
        return root.getCommand() instanceof Main main ? main.environment : System.getenv();
    }

    /**
     * Bad input (a malformed file, a wrong flag value, a full cache) is reported as one line that
     * names what is wrong; anything else is a bug and keeps its stack trace.
     */
    private static int report(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        boolean userError = e instanceof java.io.IOException || e instanceof IllegalArgumentException
                || e instanceof IllegalStateException;
        String command = cmd.getCommandSpec().qualifiedName(); // "spin bench train", not just "train"
        if (e instanceof java.nio.file.NoSuchFileException missing) {
            cmd.getErr().println(command + ": no such file or directory: " + missing.getFile()
                    + (missing.getReason() == null ? "" : " (" + missing.getReason() + ")"));
        } else if (userError) {
            cmd.getErr().println(command + ": " + e.getMessage());
        } else {
            e.printStackTrace(cmd.getErr());
        }
        return 1;
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
