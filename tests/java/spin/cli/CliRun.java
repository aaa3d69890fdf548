package spin.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** Runs the real command line in-process and captures what it prints. */
final class CliRun {
    private CliRun() {}

    record Result(int exitCode, String out, String err) {}

    static Result run(String... args) {
        return run(System.getenv(), args);
    }

    /** The command line reading the launch (torchrun's or Slurm's variables) from {@code environment}. */
    static Result run(java.util.Map<String, String> environment, String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        CommandLine cli = Main.commandLine(environment);
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Result(code, out.toString(), err.toString());
    }
}
