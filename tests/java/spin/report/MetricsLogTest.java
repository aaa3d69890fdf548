package spin.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.report.MetricsLog.Point;

class MetricsLogTest {
    @TempDir
    Path dir;

    private Path file(String... lines) throws IOException {
        Path f = dir.resolve("metrics.jsonl");
        Files.writeString(f, String.join("\n", lines));
        return f;
    }

    @Test
    void readsTrainingAndEvaluationLinesAtTheSameStep() throws IOException {
        MetricsLog log = MetricsLog.read(file(
                "{\"step\": 10, \"epoch\": 0.5, \"loss\": 0.69, \"learning_rate\": 5e-7, \"rewards/margins\": 0.1,"
                        + " \"tokens_per_second\": 812.5, \"note\": \"warm-up\", \"extra\": [1, 2]}",
                "{\"step\": 10, \"epoch\": 0.5, \"eval_loss\": 0.7, \"eval_rewards/margins\": 0.05, \"eval_runtime\": 3.2}",
                "{\"step\": 20, \"loss\": NaN, \"grad_norm\": null}",
                "{\"step\": 30, \"loss\": Infinity, \"rewards/margins\": -0.25}",
                ""));
        assertEquals(3, log.series("loss").size());
        assertEquals(new Point(10, 0.69), log.series("loss").get(0));
        assertTrue(Double.isNaN(log.series("loss").get(1).value()));
        assertEquals(new Point(30, Double.POSITIVE_INFINITY), log.series("loss").get(2));
        assertEquals(List.of(new Point(10, 0.1), new Point(30, -0.25)), log.series("rewards/margins"));
        assertEquals(List.of(new Point(10, 0.7)), log.series("eval_loss"));
        assertEquals(List.of(new Point(10, 0.05)), log.series("eval_rewards/margins"));
        assertEquals(List.of(new Point(10, 5e-7)), log.series("learning_rate"));
        assertEquals(List.of(), log.series("grad_norm"), "null is a missing value");
        assertEquals(30, log.lastStep());
        assertEquals(0, log.linesWithoutStep());
    }

    @Test
    void aLaterLineForTheSameStepReplacesTheEarlierOneWhole() throws IOException {
        MetricsLog log = MetricsLog.read(file(
                "{\"step\": 10, \"loss\": 0.9, \"grad_norm\": 2.0}",
                "{\"step\": 20, \"loss\": 0.8}",
                "{\"step\": 20, \"eval_loss\": 0.85}",
                "{\"step\": 10, \"loss\": 0.7}",
                "{\"step\": 20, \"eval_loss\": 0.75}"));
        assertEquals(List.of(new Point(10, 0.7), new Point(20, 0.8)), log.series("loss"));
        assertEquals(List.of(), log.series("grad_norm"));
        assertEquals(List.of(new Point(20, 0.75)), log.series("eval_loss"));
    }

    @Test
    void linesWithoutAStepAreCountedAndLeftOut() throws IOException {
        MetricsLog log = MetricsLog.read(file("{\"loss\": 0.5}", "{\"step\": 4, \"loss\": 0.4}", "{\"train_runtime\": 12.0}"));
        assertEquals(List.of(new Point(4, 0.4)), log.series("loss"));
        assertEquals(2, log.linesWithoutStep());
    }

    @Test
    void aMalformedLineIsAnErrorNamingTheFileAndLine() throws IOException {
        Path f = file("{\"step\": 10, \"loss\": 0.9}", "{\"step\": 20, \"loss\": 0.", "{\"step\": 30, \"loss\": 0.7}");
        IOException e = assertThrows(IOException.class, () -> MetricsLog.read(f));
        assertTrue(e.getMessage().startsWith(f + ", line 2: not valid JSON"), e.getMessage());
        assertTrue(e.getMessage().contains("fix or delete the line"), e.getMessage());
    }

    @Test
    void wrongTypesAreErrorsNamingTheKey() throws IOException {
        Path loss = file("{\"step\": 10, \"loss\": \"low\"}");
        IOException e = assertThrows(IOException.class, () -> MetricsLog.read(loss));
        assertEquals(loss + ", line 1: \"loss\" must be a number, got string (\"low\"); fix the line", e.getMessage());

        Path step = file("", "{\"step\": 2.5, \"loss\": 1}");
        e = assertThrows(IOException.class, () -> MetricsLog.read(step));
        assertEquals(step + ", line 2: \"step\" must be a whole number >= 0, got number (2.5); fix the line", e.getMessage());

        Path array = file("[1, 2]");
        e = assertThrows(IOException.class, () -> MetricsLog.read(array));
        assertTrue(e.getMessage().startsWith(array + ", line 1: expected a JSON object, got array"), e.getMessage());
    }
}
