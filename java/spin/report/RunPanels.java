package spin.report;

import java.util.Collection;
import java.util.List;
import java.util.stream.IntStream;

/**
 * The report's x axis: one panel per run, side by side in run order and of equal width, each with
 * its own step axis from 0 to the run's last logged step, all sharing the chart's y axis. A 500-step
 * SFT warm-up and two 50-step SPIN runs then each get a third of the chart, where laying them end
 * to end on one step axis left the SPIN runs a sliver.
 */
final class RunPanels {
    /** Pixels between two panels. */
    static final int GAP = 2 * ChartCanvas.INSET;

    private final List<String> names;
    private final long[] lastSteps;
    /** The runs that get a panel, in panel order, by their index in the report's run list. */
    private final List<Integer> shown;

    private RunPanels(List<String> names, long[] lastSteps, List<Integer> shown) {
        this.names = names;
        this.lastSteps = lastSteps;
        this.shown = shown;
    }

    static RunPanels of(List<Run> runs) {
        return new RunPanels(runs.stream().map(Run::name).toList(), runs.stream().mapToLong(r -> r.log().lastStep()).toArray(),
                IntStream.range(0, runs.size()).boxed().toList());
    }

    /** Panels for these runs only: a chart leaves out the runs that logged none of its metrics. */
    RunPanels only(Collection<Integer> runs) {
        return new RunPanels(names, lastSteps, shown.stream().filter(runs::contains).toList());
    }

    /** The runs with a panel, in panel order. */
    List<Integer> runs() {
        return shown;
    }

    String name(int run) {
        return names.get(run);
    }

    long lastStep(int run) {
        return lastSteps[run];
    }

    /** The run's panel's left edge in pixels, for a plot area from {@code left} spanning {@code width}. */
    double left(int run, double left, double width) {
        return left + panel(run) * (panelWidth(width) + GAP);
    }

    /** The run's panel's right edge in pixels. */
    double right(int run, double left, double width) {
        return left(run, left, width) + panelWidth(width);
    }

    private int panel(int run) {
        int p = shown.indexOf(run);
        if (p < 0) {
            throw new IllegalArgumentException("run " + names.get(run) + " has no panel here");
        }
        return p;
    }

    private double panelWidth(double width) {
        return (width - (shown.size() - 1) * GAP) / Math.max(1, shown.size());
    }
}
