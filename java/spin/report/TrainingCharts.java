package spin.report;

import java.awt.geom.Point2D;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * The training charts: which metrics share a chart, and how every run's training and evaluation
 * values become series in the run's panel ({@link RunPanels}). A chart is made only when some run logged one of
 * its metrics.
 */
final class TrainingCharts {
    /** A chart's file name (without .png), title, y axis name, and its one or two metrics with their legend names. */
    record Definition(String file, String title, String yName, List<String> metrics, List<String> names) {}

    static final List<Definition> DEFINITIONS = List.of(
            new Definition("loss", "Loss", "loss", List.of("loss"), List.of("train")),
            new Definition("rewards_margins", "Reward margin (real minus generated)", "rewards/margins",
                    List.of("rewards/margins"), List.of("train")),
            new Definition("rewards_accuracies", "Reward accuracy (share of pairs where the real answer wins)", "rewards/accuracies",
                    List.of("rewards/accuracies"), List.of("train")),
            new Definition("rewards", "Rewards of the real and the generated answers", "reward",
                    List.of("rewards/real", "rewards/generated"), List.of("real", "generated")),
            new Definition("logps", "Log-probs of the real and the generated answers", "log-prob (summed over the answer)",
                    List.of("logps/real", "logps/generated"), List.of("real", "generated")),
            new Definition("learning_rate", "Learning rate", "learning_rate", List.of("learning_rate"), List.of("train")));

    /** A rendered chart and what it left out (NaN and infinite values), for the report's notes. */
    record Chart(String file, String title, BufferedImage image, List<String> notes) {}

    private TrainingCharts() {}

    static List<Chart> render(List<Run> runs, RunPanels panels) {
        List<Chart> charts = new ArrayList<>();
        for (Definition d : DEFINITIONS) {
            List<LineChart.Series> series = new ArrayList<>();
            Map<LineChart.Style, String> styleNames = new EnumMap<>(LineChart.Style.class);
            List<String> notes = new ArrayList<>();
            for (int run = 0; run < runs.size(); run++) {
                for (int m = 0; m < d.metrics().size(); m++) {
                    for (boolean eval : new boolean[] {false, true}) {
                        String key = (eval ? MetricsLog.EVAL_PREFIX : "") + d.metrics().get(m);
                        List<MetricsLog.Point> values = runs.get(run).log().series(key);
                        if (values.isEmpty()) {
                            continue;
                        }
                        LineChart.Style style = eval ? (m == 0 ? LineChart.Style.DASHED_CIRCLES : LineChart.Style.DASHED_SQUARES)
                                : (m == 0 ? LineChart.Style.SOLID : LineChart.Style.DOTTED);
                        String name = d.names().get(m);
                        styleNames.put(style, !eval ? name : d.metrics().size() == 1 ? "eval" : "eval " + name);
                        List<Point2D.Double> points = new ArrayList<>();
                        int nonFinite = 0;
                        for (MetricsLog.Point p : values) {
                            points.add(new Point2D.Double(p.step(), p.value()));
                            nonFinite += Double.isFinite(p.value()) ? 0 : 1;
                        }
                        if (nonFinite > 0) {
                            notes.add(runs.get(run).name() + ": " + nonFinite + " " + key + " value" + (nonFinite == 1 ? " is" : "s are")
                                    + " NaN or infinite, not drawn");
                        }
                        series.add(new LineChart.Series(run, style, points));
                    }
                }
            }
            if (!series.isEmpty()) {
                charts.add(new Chart(d.file(), d.title(), LineChart.render(d.title(), d.yName(), panels, series, styleNames, notes), notes));
            }
        }
        return charts;
    }
}
