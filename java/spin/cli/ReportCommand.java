package spin.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.report.ReportWriter;

/** {@code spin report}: charts and a one-page HTML summary of the training runs in a SPIN work directory. */
@Command(name = "report", mixinStandardHelpOptions = true,
        description = "Chart the metrics.jsonl of every run under a work directory (sft, iter0, iter1, ...) and its "
                + "evaluation.jsonl, and write the PNGs and a self-contained report.html.")
public final class ReportCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--work", required = true, description = "SPIN work directory holding sft/, iter0/train/, ... with metrics.jsonl files")
    private Path work;

    @Option(names = "--out", description = "output directory (default: WORK/report)")
    private Path out;

    @Override
    public Integer call() throws Exception {
        // Charts are drawn with java.awt; headless keeps it from looking for a display (and, on macOS,
        // from putting an application in the Dock) before the first image is made.
        System.setProperty("java.awt.headless", "true");
        ReportWriter.Written written = ReportWriter.write(work, out == null ? work.resolve("report") : out);
        PrintWriter stdout = spec.commandLine().getOut();
        stdout.printf("Report of %d run%s from %s: %s%n", written.runs().size(), written.runs().size() == 1 ? "" : "s", work,
                String.join(", ", written.runs()));
        for (Path file : written.files()) {
            stdout.println("  " + file);
        }
        for (String note : written.notes()) {
            stdout.println("Note: " + note);
        }
        stdout.flush();
        return 0;
    }
}
