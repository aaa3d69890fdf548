package spin.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code evaluation.jsonl}, which the demo writes into the work directory: one line per model,
 * {@code {"model": "iter0", "exact_match": 0.125, "mean_logp_real": -14.2, "examples": 64}}. Only
 * {@code model} is required; a model listed again replaces its earlier line and keeps its place.
 */
final class Evaluation {
    static final String FILE_NAME = "evaluation.jsonl";

    /** One model's results; a value the line did not have is null. */
    record Row(String model, Double exactMatch, Double meanLogpReal, Long examples) {}

    private Evaluation() {}

    static List<Row> read(Path file) throws IOException {
        Map<String, Row> rows = new LinkedHashMap<>();
        JsonLogLines.read(file, (lineNumber, node) -> {
            JsonNode model = node.get("model");
            if (model == null || !model.isTextual()) {
                throw JsonLogLines.problem(file, lineNumber, "\"model\" must be a string naming the model (sft, iter0, ...), got "
                        + (model == null ? "nothing" : JsonLogLines.describe(model)) + "; fix the line");
            }
            Double exactMatch = optionalNumber(file, lineNumber, node, "exact_match");
            Double meanLogp = optionalNumber(file, lineNumber, node, "mean_logp_real");
            Long examples = node.hasNonNull("examples") ? JsonLogLines.count(file, lineNumber, "examples", node.get("examples")) : null;
            rows.put(model.asText(), new Row(model.asText(), exactMatch, meanLogp, examples));
        });
        return new ArrayList<>(rows.values());
    }

    private static Double optionalNumber(Path file, int lineNumber, JsonNode node, String key) throws IOException {
        return node.hasNonNull(key) ? JsonLogLines.number(file, lineNumber, key, node.get(key)) : null;
    }
}
