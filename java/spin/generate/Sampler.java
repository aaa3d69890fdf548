package spin.generate;

import java.util.Arrays;

/**
 * Chooses a token from one row of logits, in double precision on the host, in HF's order: the
 * repetition penalty, then (when sampling) temperature, top-k, top-p, and a draw by inverse CDF
 * over the surviving tokens in id order from the request's own {@link SequenceRandom}. Greedy
 * decoding returns the first index of the largest logit, as {@code torch.argmax} does.
 *
 * <p>Keeps scratch arrays between calls: one instance serves one thread.
 */
final class Sampler {
    private final SamplingParams params;
    private final int vocab;
    private final double[] scores;
    private final double[] weights;
    private final int[] penalizedAt;
    private final long[] order;
    private final double[] heap;
    private int calls;

    Sampler(SamplingParams params, int vocab) {
        this.params = params;
        this.vocab = vocab;
        this.scores = new double[vocab];
        this.weights = new double[vocab];
        this.penalizedAt = new int[vocab];
        this.order = new long[vocab];
        this.heap = new double[Math.max(1, Math.min(params.topK(), vocab))];
    }

    /**
     * The next token given {@code logits[offset, offset + vocab)} and the sequence so far (prompt and
     * generated tokens, the first {@code historyLength} entries of {@code history}).
     */
    int next(float[] logits, int offset, int[] history, int historyLength, SequenceRandom random) {
        if (params.isGreedy() && !params.penalizesRepetition()) {
            return argmax(logits, offset);
        }
        for (int i = 0; i < vocab; i++) {
            double s = logits[offset + i];
            if (Double.isNaN(s)) {
                throw nan(i);
            }
            scores[i] = s;
        }
        if (params.penalizesRepetition()) {
            penalize(history, historyLength);
        }
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (scores[i] > scores[best]) {
                best = i;
            }
        }
        if (params.isGreedy()) {
            return best;
        }
        double total = softmaxWeights(scores[best]);
        if (params.topP() < 1) {
            total = keepNucleus(total);
        }
        double u = random.nextDouble() * total, cumulative = 0;
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
        return last; // u fell into the rounding gap between the running sum and total
    }

    /** Greedy decoding reads the logits where they are: the reference's default, and the common case. */
    private int argmax(float[] logits, int offset) {
        int best = 0;
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            float x = logits[offset + i];
            if (x > max) {
                max = x;
                best = i;
            } else if (x != x) {
                throw nan(i);
            }
        }
        return best;
    }

    private static IllegalStateException nan(int token) {
        return nanLogits("token " + token);
    }

    /** The error of a NaN logit, {@code where} naming the token or step. */
    static IllegalStateException nanLogits(String where) {
        return new IllegalStateException("the model produced a NaN logit (" + where + "); the weights are broken");
    }

    /** HF's RepetitionPenaltyLogitsProcessor: each distinct token of the sequence is penalised once. */
    private void penalize(int[] history, int historyLength) {
        int stamp = ++calls;
        double penalty = params.repetitionPenalty();
        for (int j = 0; j < historyLength; j++) {
            int t = history[j];
            if (penalizedAt[t] != stamp) {
                penalizedAt[t] = stamp;
                scores[t] = scores[t] < 0 ? scores[t] * penalty : scores[t] / penalty;
            }
        }
    }

    /** weights = exp((score - max) / T) for the tokens top-k keeps, 0 for the others; returns their sum. */
    private double softmaxWeights(double max) {
        double threshold = params.topK() > 0 && params.topK() < vocab ? kthLargestScore(params.topK()) : Double.NEGATIVE_INFINITY;
        double inverseT = 1 / params.temperature(), total = 0;
        for (int i = 0; i < vocab; i++) {
            // HF keeps every token tied with the k-th largest score.
            double w = scores[i] >= threshold ? Math.exp((scores[i] - max) * inverseT) : 0;
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
     * HF's TopPLogitsWarper: a token survives when the tokens more likely than it hold less than
     * top_p of the probability. Tokens with probability at most (1 - top_p) / V are dropped without
     * sorting: all of them together hold at most 1 - top_p, and they are the least likely, so that
     * rule drops them anyway. Returns the surviving weight.
     */
    private double keepNucleus(double total) {
        double surelyDropped = total * (1 - params.topP()) / vocab;
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
        double limit = params.topP() * total, before = 0, kept = 0;
        for (int c = candidates - 1; c >= 0; c--) {
            int i = (int) (0xFFFFFFFFL - (order[c] & 0xFFFFFFFFL));
            if (before < limit) {
                before += weights[i];
                kept += weights[i];
            } else {
                weights[i] = 0;
            }
        }
        return kept;
    }
}
