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
import spin.dist.Communicator;

/**
 * Weighted means of an objective's named metrics over micro-batches, their sums kept on the
 * backend: {@link #add} queues {@code sums += values * weight} (no wait for a device), and only
 * {@link #means} and {@link #toJson} read the sums, in one read each. The sums travel in
 * checkpoints so a resume logs the same means. The arithmetic is that of a sum per name in double,
 * value times weight added in order, so the means do not depend on where the sums live.
 *
 * <p>Over a ZeRO-3 group each rank adds its own micro-batches, and every read is a collective:
 * the sums and weights are summed over the ranks (rank order), so every rank reads the group's
 * means; with one micro-batch per rank those are the bits one device adding the same
 * micro-batches in rank order gets.
 */
final class MetricMeans implements AutoCloseable {
    private final Backend backend;
    private final List<String> names;
    /** F64 [names]: the weighted sums since the last clear. */
    private final Tensor sums;
    /** The ZeRO-3 group whose ranks' sums a read adds up, or null. */
    private final Communicator group;
    /** Every add carries all names, so one weight serves them all. */
    private double weight;
    private boolean added;

    MetricMeans(Backend backend, List<String> names) {
        this(backend, names, null);
    }

    /** Means over {@code group}'s ranks (null: this backend's alone). */
    MetricMeans(Backend backend, List<String> names, Communicator group) {
        this.backend = backend;
        this.group = group;
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
        double[] values = read();
        if (values != null) {
            double total = values[names.size()];
            for (int i = 0; i < names.size(); i++) {
                out.put(prefix + names.get(i), values[i] / total);
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
        double[] values = read();
        if (values != null) {
            for (int i = 0; i < names.size(); i++) {
                node.putArray(names.get(i)).add(values[i]).add(values[names.size()]);
            }
        }
        return node;
    }

    /**
     * The sums then the weight, over the group where there is one; null when nothing was added
     * (on any rank).
     */
    private double[] read() {
        if (group == null) {
            if (!added) {
                return null;
            }
            double[] values = Arrays.copyOf(backend.readDoubles(sums), names.size() + 1);
            values[names.size()] = weight;
            return values;
        }
        int n = names.size();
        try (Tensor all = backend.allocate(DType.F64, n + 2)) {
            backend.copy(all.view(0, n), sums);
            double[] tail = {weight, added ? 1 : 0};
            backend.write(all.view(n, 2), tail);
            group.allReduce(all);
            double[] values = backend.readDoubles(all);
            return values[n + 1] > 0 ? Arrays.copyOf(values, n + 1) : null;
        }
    }

    /**
     * The state {@link #toJson} wrote, which must name exactly this objective's metrics (or none).
     * Over a group, rank 0 takes the saved sums and the others start empty, so the group's sums
     * are the saved ones.
     */
    void restore(JsonNode node) {
        clear();
        if (node.isEmpty() || (group != null && group.rank() != 0)) {
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
