package spin.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static spin.cli.CliRun.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The demo end to end with its fixed seed: a weak SFT model, two SPIN iterations through
 * spin iterate, held-out evaluation and the report. SPIN must raise held-out exact match above the
 * SFT model's, the claim the README's table makes.
 */
class DemoCommandTest {
    @TempDir
    Path dir;

    @Test
    void spinImprovesHeldOutAccuracyOverTheSftModel() throws IOException {
        Path work = dir.resolve("demo");
        CliRun.Result r = run("demo", "--work", work.toString());
        assertEquals(0, r.exitCode(), r.err());
        List<JsonNode> results = new ArrayList<>();
        for (String line : Files.readAllLines(work.resolve("evaluation.jsonl"))) {
            results.add(new ObjectMapper().readTree(line));
        }
        assertEquals(List.of("sft", "iter0", "iter1"), results.stream().map(n -> n.get("model").asText()).toList());
        double sft = results.get(0).get("exact_match").asDouble();
        double iter0 = results.get(1).get("exact_match").asDouble(), iter1 = results.get(2).get("exact_match").asDouble();
        assertTrue(sft > 0.1 && sft < 0.8, "the warm-up leaves the model weak but not helpless: " + sft);
        assertTrue(iter0 > sft, "iteration 0 improves on the SFT model: " + results);
        assertTrue(iter1 > sft, "iteration 1 improves on the SFT model: " + results);
        assertTrue(r.out().contains("| sft | "), r.out());
        assertTrue(r.err().contains("training on " + work.resolve("iter0").resolve("data") + " + " + work.resolve("iter1").resolve("data")),
                "iteration 1 mixes iteration 0's records with its own");
        assertTrue(Files.isRegularFile(work.resolve("report").resolve("report.html")));
        assertTrue(Files.isRegularFile(work.resolve("iter1").resolve("train").resolve("metrics.jsonl")));

        CliRun.Result again = run("demo", "--work", work.toString());
        assertEquals(0, again.exitCode(), again.err());
        assertTrue(again.err().contains("training already finished"), "a re-run resumes instead of training again");
        assertEquals(Files.readAllLines(work.resolve("evaluation.jsonl")).size(), 3);
    }
}
