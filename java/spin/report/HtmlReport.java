package spin.report;

import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Locale;

/**
 * report.html: one self-contained page, so it can be mailed or attached as a single file. Charts
 * are embedded as base64 {@code data:} URIs and the style is inline; nothing is loaded from
 * elsewhere and there are no scripts.
 */
final class HtmlReport {
    /** A chart as embedded: its title (caption and alt text) and PNG bytes. */
    record Figure(String title, byte[] png) {}

    private static final String STYLE = """
            body { font-family: sans-serif; color: #333; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
            table { border-collapse: collapse; margin: 1em 0; }
            th, td { border: 1px solid #ccc; padding: 4px 10px; }
            th { background: #f4f4f4; text-align: left; }
            td.num { text-align: right; font-variant-numeric: tabular-nums; }
            figure { margin: 1.5em 0; }
            figcaption { color: #666; font-size: 90%; }
            img { max-width: 100%; height: auto; }
            """;

    private HtmlReport() {}

    /**
     * @param evaluation the evaluation table's rows; empty when the work directory has no evaluation.jsonl
     * @param evaluationChart the exact-match bar chart, or null with no evaluation
     */
    static String render(Path work, List<RunSummary> runs, List<Evaluation.Row> evaluation, Figure evaluationChart,
            List<Figure> trainingCharts, List<String> notes) {
        StringBuilder html = new StringBuilder();
        html.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>SPIN report: ")
                .append(escape(work.toString())).append("</title>\n<style>\n").append(STYLE).append("</style>\n</head>\n<body>\n")
                .append("<h1>SPIN report</h1>\n<p>Work directory <code>").append(escape(work.toString())).append("</code>, ")
                .append(runs.size()).append(runs.size() == 1 ? " run: " : " runs in order: ")
                .append(escape(String.join(", ", runs.stream().map(RunSummary::name).toList())))
                .append(". The charts lay the runs end to end on one step axis (global step); dashed lines mark where a run begins.</p>\n");

        html.append("<h2>Runs</h2>\n<table>\n<tr><th>run</th><th>steps</th><th>final loss</th><th>final margin</th>"
                + "<th>final accuracy</th><th>mean tokens/s</th></tr>\n");
        for (RunSummary r : runs) {
            html.append("<tr><td>").append(escape(r.name())).append("</td>").append("<td class=\"num\">").append(r.steps()).append("</td>")
                    .append(number(r.finalLoss())).append(number(r.finalMargin())).append(cell(r.finalAccuracy(), "%.3f"))
                    .append(cell(r.meanTokensPerSecond(), "%.1f")).append("</tr>\n");
        }
        html.append("</table>\n<p>Final values are the last logged; tokens/s is the mean over the run's log lines.</p>\n");

        if (!evaluation.isEmpty()) {
            html.append("<h2>Evaluation</h2>\n<table>\n<tr><th>model</th><th>exact match</th><th>mean log-prob of real answers</th>"
                    + "<th>examples</th></tr>\n");
            for (Evaluation.Row e : evaluation) {
                html.append("<tr><td>").append(escape(e.model())).append("</td>").append(cell(e.exactMatch(), "%.3f"))
                        .append(number(e.meanLogpReal())).append(cell(e.examples() == null ? null : (double) e.examples(), "%.0f"))
                        .append("</tr>\n");
            }
            html.append("</table>\n");
            figure(html, evaluationChart);
        }

        html.append("<h2>Training</h2>\n");
        for (Figure f : trainingCharts) {
            figure(html, f);
        }
        if (!notes.isEmpty()) {
            html.append("<h2>Notes</h2>\n<ul>\n");
            for (String note : notes) {
                html.append("<li>").append(escape(note)).append("</li>\n");
            }
            html.append("</ul>\n");
        }
        return html.append("</body>\n</html>\n").toString();
    }

    private static void figure(StringBuilder html, Figure f) {
        html.append("<figure><img src=\"data:image/png;base64,").append(Base64.getEncoder().encodeToString(f.png()))
                .append("\" alt=\"").append(escape(f.title())).append("\" width=\"").append(ChartCanvas.WIDTH)
                .append("\" height=\"").append(ChartCanvas.HEIGHT).append("\"><figcaption>").append(escape(f.title()))
                .append("</figcaption></figure>\n");
    }

    private static String cell(Double value, String format) {
        return "<td class=\"num\">" + (value == null ? "&ndash;" : String.format(Locale.ROOT, format, value)) + "</td>";
    }

    /** Four significant digits without trailing zeros (0.0653, -14.2), in scientific notation when very small or large. */
    private static String number(Double value) {
        if (value == null || !Double.isFinite(value)) {
            return cell(value, "%f");
        }
        double magnitude = Math.abs(value);
        if (magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e6)) {
            return cell(value, "%.3e");
        }
        return "<td class=\"num\">" + new BigDecimal(value).round(new MathContext(4)).stripTrailingZeros().toPlainString() + "</td>";
    }

    private static String escape(String text) {
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
