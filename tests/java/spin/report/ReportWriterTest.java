package spin.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReportWriterTest {
    private static final Pattern DATA_URI = Pattern.compile("src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"");

    @TempDir
    Path work;

    private void write(String file, String... lines) throws IOException {
        Path f = work.resolve(file);
        Files.createDirectories(f.getParent());
        Files.writeString(f, String.join("\n", lines) + "\n");
    }

    private static String spinLine(long step, double loss, double margin, double accuracy, double tokensPerSecond) {
        return "{\"step\": " + step + ", \"loss\": " + loss + ", \"rewards/margins\": " + margin + ", \"rewards/accuracies\": "
                + accuracy + ", \"rewards/real\": 0.1, \"rewards/generated\": -0.1, \"logps/real\": -50, \"logps/generated\": -60,"
                + " \"learning_rate\": 5e-7, \"tokens_per_second\": " + tokensPerSecond + "}";
    }

    @Test
    void htmlEmbedsEveryChartOnceAndSummarisesEveryRun() throws IOException {
        write("sft/metrics.jsonl", "{\"step\": 10, \"loss\": 2.0, \"tokens_per_second\": 900}",
                "{\"step\": 20, \"loss\": 1.5, \"tokens_per_second\": 1000}");
        write("iter0/train/metrics.jsonl", spinLine(5, 0.69, 0.1, 0.5, 800), spinLine(10, 0.5, 0.4, 0.75, 820),
                "{\"step\": 10, \"eval_loss\": 0.55, \"eval_rewards/margins\": 0.3}");
        write("iter1/train/metrics.jsonl", spinLine(5, 0.6, 0.5, 0.8, 810), spinLine(10, 0.4, 0.9, 1.0, 830));
        write("evaluation.jsonl", "{\"model\": \"sft\", \"exact_match\": 0.125, \"mean_logp_real\": -14.2, \"examples\": 64}",
                "{\"model\": \"iter1\", \"exact_match\": 0.25, \"mean_logp_real\": -12.5, \"examples\": 64}");

        Path out = work.resolve("out");
        ReportWriter.Written written = ReportWriter.write(work, out);
        assertEquals(List.of("sft", "iter0", "iter1"), written.runs());
        List<String> pngs = List.of("loss", "rewards_margins", "rewards_accuracies", "rewards", "logps", "learning_rate",
                "evaluation_exact_match");
        assertEquals(pngs.size() + 1, written.files().size());
        for (String png : pngs) {
            assertTrue(written.files().contains(out.resolve(png + ".png")), png);
            assertTrue(Files.isRegularFile(out.resolve(png + ".png")), png);
        }
        assertEquals(out.resolve("report.html"), written.files().getLast());

        String html = Files.readString(out.resolve("report.html"));
        Matcher uris = DATA_URI.matcher(html);
        int embedded = 0;
        while (uris.find()) {
            byte[] png = Base64.getDecoder().decode(uris.group(1));
            assertTrue(ImageIO.read(new java.io.ByteArrayInputStream(png)) != null, "a PNG");
            embedded++;
        }
        assertEquals(pngs.size(), embedded, "one data: URI per chart");
        assertEquals(pngs.size(), html.split("data:", -1).length - 1, "and no other data: URI");
        assertFalse(html.contains("<script"), "no scripts");
        assertFalse(html.contains("http://") || html.contains("https://"), "nothing loaded from elsewhere");
        for (String run : written.runs()) {
            assertTrue(html.contains("<tr><td>" + run + "</td>"), run + " in the summary table");
        }
        // iter0: last step 10, final loss 0.5, margin 0.4, accuracy 0.75, mean tokens/s (800 + 820) / 2.
        assertTrue(html.contains("<tr><td>iter0</td><td class=\"num\">10</td><td class=\"num\">0.5</td><td class=\"num\">0.4</td>"
                + "<td class=\"num\">0.750</td><td class=\"num\">810.0</td></tr>"), html);
        assertTrue(html.contains("<tr><td>sft</td><td class=\"num\">20</td><td class=\"num\">1.5</td><td class=\"num\">&ndash;</td>"
                + "<td class=\"num\">&ndash;</td><td class=\"num\">950.0</td></tr>"), html);
        assertTrue(html.contains("<tr><td>iter1</td><td class=\"num\">0.250</td><td class=\"num\">-12.5</td><td class=\"num\">64</td></tr>"),
                html);
    }

    @Test
    void barsTakeTheirRunsColours() throws IOException {
        write("sft/metrics.jsonl", "{\"step\": 1, \"loss\": 2.0}");
        write("iter0/train/metrics.jsonl", "{\"step\": 1, \"loss\": 0.6}");
        write("evaluation.jsonl", "{\"model\": \"iter0\", \"exact_match\": 0.5}", "{\"model\": \"sft\", \"exact_match\": 0.25}");
        ReportWriter.write(work, work.resolve("report"));
        BufferedImage bars = ImageIO.read(work.resolve("report/evaluation_exact_match.png").toFile());
        assertEquals(960, bars.getWidth());
        // Two bars across the plot area: iter0 (orange, 0.5) first, then sft (blue, 0.25); y runs 0..1.
        var data = ChartCanvas.DATA;
        int bottom = data.y + data.height;
        assertEquals(0xff7f0e, bars.getRGB(data.x + data.width / 4, bottom - data.height / 4) & 0xFFFFFF);
        assertEquals(0x1f77b4, bars.getRGB(data.x + 3 * data.width / 4, bottom - data.height / 8) & 0xFFFFFF);
        assertEquals(0xffffff, bars.getRGB(data.x + 3 * data.width / 4, bottom - 3 * data.height / 8) & 0xFFFFFF, "sft's bar ends at 0.25");
    }

    @Test
    void noEvaluationFileMeansNoEvaluationSection() throws IOException {
        write("iter0/train/metrics.jsonl", "{\"step\": 1, \"loss\": 0.6}", "{\"loss\": 0.5}");
        ReportWriter.Written written = ReportWriter.write(work, work.resolve("report"));
        assertEquals(List.of(work.resolve("report/loss.png"), work.resolve("report/report.html")), written.files());
        String html = Files.readString(work.resolve("report/report.html"));
        assertFalse(html.contains("Evaluation"));
        assertEquals(List.of("iter0: left out 1 line of " + work.resolve("iter0/train/metrics.jsonl") + " without a \"step\""),
                written.notes());
        assertTrue(html.contains("without a &quot;step&quot;"));
    }
}
