package spin.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * Weighted means of an objective's named metrics over micro-batches, their sums kept on the
 * backend: {@link #add} queues {@code sums += values * weight} (no wait for a device), and only
 * {@link #means} and {@link #toJson} read the sums, in one read each. The sums travel in
 * checkpoints so a resume logs the same means. The arithmetic is that of a sum per name in double,
 * value times weight added in order, so the means do not depend on where the sums live.
 */
final class MetricMeans implements AutoCloseable {
    private final Backend backend;
    private final List<String> names;
    /** F64 [names]: the weighted sums since the last clear. */
    private final Tensor sums;
    /** Every add carries all names, so one weight serves them all. */
    private double weight;
    private boolean added;

    MetricMeans(Backend backend, List<String> names) {
        this.backend = backend;
        this.names = List.copyOf(names);
        this.sums = backend.allocate(DType.F64, names.size());
        clear();
    }

    /**
     * Adds one micro-batch's metrics, {@code values} F64 [names] in the names' order, with its
     * weight; queued on the backend.
     */
    void add(Tensor values, double weight) {
        backend.accumulateWeighted(sums, values, weight);
        this.weight += weight;
        added = true;
    }

    /** Each name's mean, prefixed; empty when nothing was added since the last clear. Reads the sums. */
    Map<String, Double> means(String prefix) {
        Map<String, Double> out = new LinkedHashMap<>();
        if (added) {
            double[] values = backend.readDoubles(sums);
            for (int i = 0; i < names.size(); i++) {
                out.put(prefix + names.get(i), values[i] / weight);
            }
        }
        return out;
    }

    /**
     * Starts the sums afresh. They start at -0, the identity of IEEE addition, so a first product
     * of -0 stays -0, as a sum that began with the first value would.
     */
    void clear() {
        double[] identity = new double[names.size()];
        Arrays.fill(identity, -0.0);
        backend.write(sums, identity);
        weight = 0;
        added = false;
    }

    /** {@code {name: [sum, weight], ...}}, empty when nothing was added. Reads the sums. */
    ObjectNode toJson(ObjectMapper json) {
        ObjectNode node = json.createObjectNode();
        if (added) {
            double[] values = backend.readDoubles(sums);
            for (int i = 0; i < names.size(); i++) {
                node.putArray(names.get(i)).add(values[i]).add(weight);
            }
        }
        return node;
    }

    /** The state {@link #toJson} wrote, which must name exactly this objective's metrics (or none). */
    void restore(JsonNode node) {
        clear();
        if (node.isEmpty()) {
            return;
        }
        Set<String> saved = new LinkedHashSet<>();
        node.fieldNames().forEachRemaining(saved::add);
        if (!saved.equals(new HashSet<>(names))) {
            throw new IllegalArgumentException("the saved metric sums are of " + saved + ", not of this run's " + names);
        }
        double[] values = new double[names.size()];
        for (int i = 0; i < names.size(); i++) {
            values[i] = node.get(names.get(i)).get(0).asDouble();
        }
        backend.write(sums, values);
        weight = node.get(names.getFirst()).get(1).asDouble();
        added = true;
    }

    @Override
    public void close() {
        sums.close();
    }
}
