package spin.report;

import java.awt.Color;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import spin.io.AtomicFiles;

/**
 * Reads the runs of a SPIN work directory (and its evaluation.jsonl, when there is one) and writes
 * one PNG per chart and report.html into an output directory. Every file goes through a temporary
 * name and a rename, so a report open in a browser is never seen half written.
 */
public final class ReportWriter {
    public static final String HTML_FILE = "report.html";
    static final String EVALUATION_CHART = "evaluation_exact_match";

    /** The runs in order, the files written in the order written, and what the charts left out. */
    public record Written(List<String> runs, List<Path> files, List<String> notes) {}

    private ReportWriter() {}

    public static Written write(Path work, Path out) throws IOException {
        List<Run> runs = RunDiscovery.find(work);
        List<String> notes = new ArrayList<>();
        for (Run run : runs) {
            int lines = run.log().linesWithoutStep();
            if (lines > 0) {
                notes.add(run.name() + ": left out " + lines + " line" + (lines == 1 ? "" : "s") + " of " + run.log().file()
                        + " without a \"step\"");
            }
        }
        List<Path> files = new ArrayList<>();
        List<HtmlReport.Figure> training = new ArrayList<>();
        for (TrainingCharts.Chart chart : TrainingCharts.render(runs, RunPanels.of(runs))) {
            byte[] png = png(chart.image());
            files.add(writePng(out, chart.file(), png));
            training.add(new HtmlReport.Figure(chart.title(), png));
            notes.addAll(chart.notes());
        }
        if (training.isEmpty()) {
            notes.add("no run logged any charted metric (" + String.join(", ", TrainingCharts.DEFINITIONS.stream()
                    .flatMap(d -> d.metrics().stream()).toList()) + "), so there are no training charts");
        }

        List<Evaluation.Row> evaluation = List.of();
        HtmlReport.Figure evaluationChart = null;
        Path evaluationFile = work.resolve(Evaluation.FILE_NAME);
        if (Files.isRegularFile(evaluationFile)) {
            evaluation = Evaluation.read(evaluationFile);
        }
        if (!evaluation.isEmpty()) {
            List<String> names = runs.stream().map(Run::name).toList();
            List<BarChart.Bar> bars = new ArrayList<>();
            for (Evaluation.Row row : evaluation) {
                // A model named like a run gets that run's colour, so the bar and the run's lines read as one.
                int run = names.indexOf(row.model());
                bars.add(new BarChart.Bar(row.model(), row.exactMatch(), run >= 0 ? RunColours.of(run) : Color.GRAY));
            }
            String title = "Exact match per model";
            byte[] png = png(BarChart.render(title, "exact match", "model", bars));
            files.add(writePng(out, EVALUATION_CHART, png));
            evaluationChart = new HtmlReport.Figure(title, png);
        }

        Path html = out.resolve(HTML_FILE);
        AtomicFiles.writeString(html, HtmlReport.render(work, runs.stream().map(RunSummary::of).toList(), evaluation, evaluationChart,
                training, notes));
        files.add(html);
        return new Written(runs.stream().map(Run::name).toList(), files, notes);
    }

    private static byte[] png(BufferedImage image) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        if (!ImageIO.write(image, "png", bytes)) {
            throw new IllegalStateException("this Java runtime has no PNG encoder (javax.imageio)");
        }
        return bytes.toByteArray();
    }

    private static Path writePng(Path out, String name, byte[] png) throws IOException {
        Path file = out.resolve(name + ".png");
        AtomicFiles.writeBytes(file, png);
        return file;
    }
}
