package spin.cli;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Map;
import picocli.CommandLine;

/**
 * Runs other spin commands in-process for the commands that chain them (iterate, demo), so each
 * stage behaves exactly as when run by hand, resumability included. Their output goes where the
 * caller's goes; a failing stage stops the chain with its own message.
 */
final class Subcommands {
    private final PrintWriter out, err;
    private final Map<String, String> environment;

    Subcommands(CommandLine parent) {
        this.out = parent.getOut();
        this.err = parent.getErr();
        this.environment = Main.environment(parent); // the stages see the launch environment the chain was started in
    }

    void run(String... args) {
        CommandLine cli = Main.commandLine(environment);
        cli.setOut(out);
        cli.setErr(err);
        int code = cli.execute(args);
        out.flush();
        err.flush();
        if (code != 0) {
            throw new IllegalStateException("stage `spin " + String.join(" ", Arrays.asList(args)) + "` failed (exit code "
                    + code + "); fix what it reported above and run again: finished stages are kept");
        }
    }
}
