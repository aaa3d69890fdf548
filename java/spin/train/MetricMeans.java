package spin.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.LinkedHashMap;
import java.util.Map;

/** Weighted means of named metrics over micro-batches; its sums travel in checkpoints so a resume logs the same means. */
final class MetricMeans {
    private final Map<String, Double> sums = new LinkedHashMap<>();
    private final Map<String, Double> weights = new LinkedHashMap<>();

    void add(Map<String, Double> values, double weight) {
        values.forEach((name, v) -> {
            sums.merge(name, v * weight, Double::sum);
            weights.merge(name, weight, Double::sum);
        });
    }

    boolean isEmpty() {
        return sums.isEmpty();
    }

    Map<String, Double> means(String prefix) {
        Map<String, Double> out = new LinkedHashMap<>();
        sums.forEach((name, sum) -> out.put(prefix + name, sum / weights.get(name)));
        return out;
    }

    void clear() {
        sums.clear();
        weights.clear();
    }

    ObjectNode toJson(ObjectMapper json) {
        ObjectNode node = json.createObjectNode();
        sums.forEach((name, sum) -> node.putArray(name).add(sum).add(weights.get(name)));
        return node;
    }

    void restore(JsonNode node) {
        clear();
        node.properties().forEach(e -> {
            sums.put(e.getKey(), e.getValue().get(0).asDouble());
            weights.put(e.getKey(), e.getValue().get(1).asDouble());
        });
    }
}
