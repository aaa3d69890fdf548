package spin.cli;

import java.io.PrintWriter;

/** The line a data command prints when --skip-invalid left rows out. */
final class Skips {
    private Skips() {}

    static void report(PrintWriter out, int skipped, String firstProblem) {
        if (skipped > 0) {
            out.printf("Skipped %,d invalid row%s; the first: %s%n", skipped, skipped == 1 ? "" : "s", firstProblem);
        }
    }
}
