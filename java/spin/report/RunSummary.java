package spin.report;

import java.util.List;

/**
 * A run's line in the report's table. "Final" values are those of the last training line that has
 * the metric, NaN included (a run that ended diverged should say so); a metric the run never
 * logged (an SFT run has no margins) is null.
 */
record RunSummary(String name, long steps, Double finalLoss, Double finalMargin, Double finalAccuracy, Double meanTokensPerSecond) {

    static RunSummary of(Run run) {
        MetricsLog log = run.log();
        return new RunSummary(run.name(), log.lastStep(), last(log.series("loss")), last(log.series("rewards/margins")),
                last(log.series("rewards/accuracies")), finiteMean(log.series("tokens_per_second")));
    }

    private static Double last(List<MetricsLog.Point> points) {
        return points.isEmpty() ? null : points.getLast().value();
    }

    private static Double finiteMean(List<MetricsLog.Point> points) {
        double sum = 0;
        int n = 0;
        for (MetricsLog.Point p : points) {
            if (Double.isFinite(p.value())) {
                sum += p.value();
                n++;
            }
        }
        return n == 0 ? null : sum / n;
    }
}
