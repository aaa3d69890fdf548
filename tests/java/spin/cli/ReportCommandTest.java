package spin.cli;

import static spin.cli.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** spin report through the real command line on a work directory laid out as the SPIN loop does. */
class ReportCommandTest {
    @TempDir
    Path work;

    private void write(String file, String... lines) throws IOException {
        Path f = work.resolve(file);
        Files.createDirectories(f.getParent());
        Files.writeString(f, String.join("\n", lines) + "\n");
    }

    private void spinRun(String dir, double firstLoss) throws IOException {
        write(dir + "/metrics.jsonl",
                "{\"step\": 10, \"epoch\": 0.5, \"loss\": " + firstLoss + ", \"learning_rate\": 5e-7, \"grad_norm\": 1.2,"
                        + " \"rewards/real\": 0.05, \"rewards/generated\": -0.05, \"rewards/accuracies\": 0.6, \"rewards/margins\": 0.1,"
                        + " \"logps/real\": -40.1, \"logps/generated\": -55.3, \"logits/real\": -1.1, \"logits/generated\": -1.3,"
                        + " \"tokens_per_second\": 812.5}",
                "{\"step\": 20, \"epoch\": 1.0, \"loss\": 0.41, \"rewards/margins\": 0.7, \"rewards/accuracies\": 0.9}",
                "{\"step\": 20, \"epoch\": 1.0, \"eval_loss\": 0.45, \"eval_rewards/real\": 0.2, \"eval_rewards/accuracies\": 0.85,"
                        + " \"eval_rewards/margins\": 0.6}",
                "");
    }

    @Test
    void writesChartsAndHtmlIntoWorkReportAndPrintsThePaths() throws IOException {
        write("sft/metrics.jsonl", "{\"step\": 50, \"epoch\": 1.0, \"loss\": 1.9, \"learning_rate\": 2e-5, \"grad_norm\": 3.0,"
                + " \"tokens_per_second\": 950}");
        spinRun("iter0/train", 0.69);
        spinRun("iter1/train", 0.6);
        write("evaluation.jsonl", "{\"model\": \"sft\", \"exact_match\": 0.125, \"mean_logp_real\": -14.2, \"examples\": 64}",
                "{\"model\": \"iter0\", \"exact_match\": 0.156, \"mean_logp_real\": -13.1, \"examples\": 64}",
                "{\"model\": \"iter1\", \"exact_match\": 0.2, \"mean_logp_real\": -12.5, \"examples\": 64}");

        CliRun.Result r = run("report", "--work", work.toString());
        assertEquals(0, r.exitCode(), r.err());
        Path out = work.resolve("report");
        List<String> files = List.of("loss.png", "rewards_margins.png", "rewards_accuracies.png", "rewards.png", "logps.png",
                "learning_rate.png", "evaluation_exact_match.png", "report.html");
        StringBuilder expected = new StringBuilder("Report of 3 runs from " + work + ": sft, iter0, iter1\n");
        for (String f : files) {
            expected.append("  ").append(out.resolve(f)).append('\n');
            assertTrue(Files.size(out.resolve(f)) > 0, f);
        }
        assertEquals(expected.toString(), r.out());
        assertEquals(960, ImageIO.read(out.resolve("rewards.png").toFile()).getWidth());
        String html = Files.readString(out.resolve("report.html"));
        assertTrue(html.contains("<td>iter1</td>") && html.contains("<td>sft</td>") && html.contains("<td>iter0</td>"));
        try (var left = Files.list(out)) {
            assertEquals(files.size(), left.count(), "no temporary files left behind");
        }
    }

    @Test
    void outPutsTheReportElsewhere() throws IOException {
        spinRun("iter0/train", 0.69);
        Path out = work.resolveSibling(work.getFileName() + "-report");
        CliRun.Result r = run("report", "--work", work.toString(), "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("  " + out.resolve("report.html") + "\n"), r.out());
        assertTrue(Files.isRegularFile(out.resolve("loss.png")));
        assertTrue(Files.notExists(work.resolve("report")));
    }

    @Test
    void aWorkDirectoryWithoutMetricsIsOneLineNamingIt() throws IOException {
        Files.createDirectories(work.resolve("iter0/train"));
        CliRun.Result r = run("report", "--work", work.toString());
        assertEquals(1, r.exitCode());
        assertEquals("spin report: no such file or directory: " + work + " (no metrics.jsonl in it or up to 4 levels below;"
                + " pass the work directory a training run or the SPIN loop wrote into)\n", r.err());
    }

    @Test
    void aMalformedLineNamesTheFileAndLine() throws IOException {
        write("iter0/train/metrics.jsonl", "{\"step\": 10, \"loss\": 0.69}", "{\"step\": 20, \"loss\"");
        CliRun.Result r = run("report", "--work", work.toString());
        assertEquals(1, r.exitCode());
        assertTrue(r.err().startsWith("spin report: " + work.resolve("iter0/train/metrics.jsonl") + ", line 2: not valid JSON"), r.err());
        assertTrue(Files.notExists(work.resolve("report")), "nothing written");
    }
}
