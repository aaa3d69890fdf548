package spin.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Set;
import java.util.TreeMap;

/**
 * One run's {@code metrics.jsonl}: one JSON object per line, each at a {@code step}. A line with any
 * {@code eval_} key is an evaluation line ({@code eval_loss}, {@code eval_rewards/margins}, ...),
 * any other a training line. A resumed run logs some steps again, so a later line replaces the
 * earlier line of the same kind at the same step, whole. Keys may be missing from any line; keys
 * other than the metrics below are ignored.
 */
public final class MetricsLog {
    static final String EVAL_PREFIX = "eval_";
    /** What training logs; an evaluation line has the same names behind {@link #EVAL_PREFIX} (its epoch keeps its name). */
    static final Set<String> METRICS = Set.of("epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second",
            "rewards/real", "rewards/generated", "rewards/accuracies", "rewards/margins",
            "logps/real", "logps/generated", "logits/real", "logits/generated");

    private final Path file;
    private final NavigableMap<Long, Map<String, Double>> train, eval;
    private final int linesWithoutStep;

    private MetricsLog(Path file, NavigableMap<Long, Map<String, Double>> train, NavigableMap<Long, Map<String, Double>> eval,
            int linesWithoutStep) {
        this.file = file;
        this.train = Collections.unmodifiableNavigableMap(train);
        this.eval = Collections.unmodifiableNavigableMap(eval);
        this.linesWithoutStep = linesWithoutStep;
    }

    public record Point(long step, double value) {}

    public static MetricsLog read(Path file) throws IOException {
        NavigableMap<Long, Map<String, Double>> train = new TreeMap<>(), eval = new TreeMap<>();
        int[] withoutStep = {0};
        JsonLogLines.read(file, (lineNumber, node) -> {
            Map<String, Double> values = new HashMap<>();
            boolean isEval = false;
            for (Map.Entry<String, JsonNode> field : node.properties()) {
                String key = field.getKey();
                isEval |= key.startsWith(EVAL_PREFIX);
                if (isMetric(key) && !field.getValue().isNull()) {
                    values.put(key, JsonLogLines.number(file, lineNumber, key, field.getValue()));
                }
            }
            JsonNode step = node.get("step");
            if (step == null || step.isNull()) {
                withoutStep[0]++;
            } else {
                (isEval ? eval : train).put(JsonLogLines.count(file, lineNumber, "step", step), values);
            }
        });
        return new MetricsLog(file, train, eval, withoutStep[0]);
    }

    private static boolean isMetric(String key) {
        return METRICS.contains(key) || key.startsWith(EVAL_PREFIX) && METRICS.contains(key.substring(EVAL_PREFIX.length()));
    }

    public Path file() {
        return file;
    }

    /** The values of one metric in step order, NaN and infinities included; an {@code eval_} name reads evaluation lines. */
    public List<Point> series(String metric) {
        List<Point> points = new ArrayList<>();
        for (Map.Entry<Long, Map<String, Double>> line : (metric.startsWith(EVAL_PREFIX) ? eval : train).entrySet()) {
            Double value = line.getValue().get(metric);
            if (value != null) {
                points.add(new Point(line.getKey(), value));
            }
        }
        return points;
    }

    /** The highest step of any line: where the run ends on the report's step axis (0 for an empty log). */
    public long lastStep() {
        long last = train.isEmpty() ? 0 : train.lastKey();
        return eval.isEmpty() ? last : Math.max(last, eval.lastKey());
    }

    /** Lines that had no {@code step} and therefore no place on the step axis. */
    public int linesWithoutStep() {
        return linesWithoutStep;
    }
}
