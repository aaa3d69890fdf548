package spin.backend.cpu;

import static spin.backend.cpu.Mem.f;
import static spin.backend.cpu.Mem.i32;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import spin.backend.SamplingRule;
import spin.backend.SplitMix64;

/**
 * The token choices of {@link spin.backend.Backend#argmaxRows} and
 * {@link spin.backend.Backend#sampleRows} on the host, one row at a time, in double precision: the
 * reference that kernels/sampling.cu is checked against. An instance holds one thread's scratch
 * for rows of one vocabulary under one rule.
 */
final class Sampling {
    private final SamplingRule rule;
    private final int vocab;
    private final double[] scores;
    private final double[] weights;
    private final long[] order;
    private final double[] heap;

    Sampling(SamplingRule rule, int vocab) {
        this.rule = rule;
        this.vocab = vocab;
        this.scores = new double[vocab];
        boolean sampling = !rule.isGreedy();
        this.weights = sampling ? new double[vocab] : null;
        this.order = sampling && rule.topP() < 1 ? new long[vocab] : null;
        this.heap = sampling && rule.topK() > 0 && rule.topK() < vocab ? new double[rule.topK()] : null;
    }

    /** The first index of the largest of the {@code vocab} floats at {@code logits[base]}, or -1 if one is NaN. */
    static int argmax(MemorySegment logits, long base, int vocab) {
        int best = 0;
        float max = Float.NEGATIVE_INFINITY;
        boolean nan = false;
        for (int v = 0; v < vocab; v++) {
            float value = f(logits, base + v);
            if (value > max) {
                max = value;
                best = v;
            } else if (value != value) {
                nan = true;
            }
        }
        return nan ? -1 : best;
    }

    /**
     * sampleRows' choice for the row of logits at {@code logits[base]}, whose history is the
     * {@code historyLength} ids at {@code history[historyBase]}, drawing number {@code draw} of
     * {@code stream}.
     */
    int sample(MemorySegment logits, long base, MemorySegment history, long historyBase, int historyLength, long stream,
            int draw) {
        for (int i = 0; i < vocab; i++) {
            double s = f(logits, base + i);
            if (Double.isNaN(s)) {
                return -1;
            }
            scores[i] = s;
        }
        if (rule.penalizesRepetition()) {
            penalize(logits, base, history, historyBase, historyLength);
        }
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (scores[i] > scores[best]) {
                best = i;
            }
        }
        double max = scores[best];
        if (rule.isGreedy() || Double.isInfinite(max)) {
            return best;
        }
        double total = softmaxWeights(max);
        if (rule.topP() < 1) {
            total = keepNucleus(total);
        }
        double u = SplitMix64.uniform(stream, draw) * total, cumulative = 0;
        int last = best;
        for (int i = 0; i < vocab; i++) {
            if (weights[i] > 0) {
                cumulative += weights[i];
                last = i;
                if (u < cumulative) {
                    return i;
                }
            }
        }
        return last; // u fell into the rounding gap between the running sum and the kept weight summed in rank order
    }

    /**
     * HF's RepetitionPenaltyLogitsProcessor. Each id is penalised from its logit rather than from its
     * score, so an id the history names several times is penalised once.
     */
    private void penalize(MemorySegment logits, long base, MemorySegment history, long historyBase, int historyLength) {
        double penalty = rule.repetitionPenalty();
        for (int j = 0; j < historyLength; j++) {
            int t = i32(history, historyBase + j);
            if (t < 0 || t >= vocab) {
                throw new IllegalArgumentException("history id " + t + " at position " + j + " is outside the vocabulary [0, "
                        + vocab + ")");
            }
            double logit = f(logits, base + t);
            scores[t] = logit < 0 ? logit * penalty : logit / penalty;
        }
    }

    /** weights = exp((score - max) / T) for the tokens top-k keeps (1 for the maximum), 0 for the others; returns their sum. */
    private double softmaxWeights(double max) {
        double threshold = heap != null ? kthLargestScore(heap.length) : Double.NEGATIVE_INFINITY;
        double inverseT = 1 / rule.temperature(), total = 0;
        for (int i = 0; i < vocab; i++) {
            // HF keeps every token tied with the k-th largest score.
            double w = scores[i] < threshold ? 0 : scores[i] == max ? 1 : Math.exp((scores[i] - max) * inverseT);
            weights[i] = w;
            total += w;
        }
        return total;
    }

    /** The k-th largest score, through a min-heap of the k largest seen. */
    private double kthLargestScore(int k) {
        for (int i = 0; i < k; i++) {
            heap[i] = scores[i];
        }
        for (int i = k / 2 - 1; i >= 0; i--) {
            siftDown(i, k);
        }
        for (int i = k; i < vocab; i++) {
            if (scores[i] > heap[0]) {
                heap[0] = scores[i];
                siftDown(0, k);
            }
        }
        return heap[0];
    }

    private void siftDown(int i, int size) {
        while (true) {
            int smallest = i, left = 2 * i + 1, right = left + 1;
            if (left < size && heap[left] < heap[smallest]) {
                smallest = left;
            }
            if (right < size && heap[right] < heap[smallest]) {
                smallest = right;
            }
            if (smallest == i) {
                return;
            }
            double swap = heap[i];
            heap[i] = heap[smallest];
            heap[smallest] = swap;
            i = smallest;
        }
    }

    /**
     * HF's TopPLogitsWarper: a token survives when the tokens ranked before it weigh less than top_p
     * of the total. Tokens weighing at most (1 - top_p) / V of it are dropped without sorting (see
     * sampleRows). Returns the surviving weight.
     */
    private double keepNucleus(double total) {
        double surelyDropped = total * (1 - rule.topP()) / vocab;
        int candidates = 0;
        for (int i = 0; i < vocab; i++) {
            if (weights[i] > surelyDropped) {
                // Sorting ascending on (float weight, -id) lists candidates from the end by falling
                // weight, ties by rising id.
                order[candidates++] = (long) Float.floatToIntBits((float) weights[i]) << 32 | (0xFFFFFFFFL - i);
            } else {
                weights[i] = 0;
            }
        }
        Arrays.sort(order, 0, candidates);
        // kept is the weight of the tokens ranked before the next one.
        double limit = rule.topP() * total, kept = 0;
        for (int c = candidates - 1; c >= 0; c--) {
            int i = (int) (0xFFFFFFFFL - (order[c] & 0xFFFFFFFFL));
            if (kept < limit) {
                kept += weights[i];
            } else {
                weights[i] = 0;
            }
        }
        return kept;
    }
}
