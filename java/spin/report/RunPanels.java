package spin.report;

import java.util.List;

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

    private RunPanels(List<String> names, long[] lastSteps) {
        this.names = names;
        this.lastSteps = lastSteps;
    }

    static RunPanels of(List<Run> runs) {
        return new RunPanels(runs.stream().map(Run::name).toList(), runs.stream().mapToLong(r -> r.log().lastStep()).toArray());
    }

    int runs() {
        return names.size();
    }

    String name(int run) {
        return names.get(run);
    }

    long lastStep(int run) {
        return lastSteps[run];
    }

    /** The panel's left edge in pixels, for a plot area from {@code left} spanning {@code width}. */
    double left(int run, double left, double width) {
        return left + run * (panelWidth(width) + GAP);
    }

    /** The panel's right edge in pixels. */
    double right(int run, double left, double width) {
        return left(run, left, width) + panelWidth(width);
    }

    private double panelWidth(double width) {
        return (width - (runs() - 1) * GAP) / Math.max(1, runs());
    }
}
