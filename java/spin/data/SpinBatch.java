package spin.data;

import java.util.Arrays;
import spin.backend.Backend;
import spin.backend.Tensor;

/**
 * B records as 2B rows of length T, right-padded to the longest row of the batch: rows 0..B-1 are
 * prompt + real answer, rows B..2B-1 prompt + generated answer, record by record (the reference's
 * concatenated_forward). Padding has the pad id, attention mask 0 and label -100. Arrays are
 * row-major [2B, T].
 */
public final class SpinBatch {
    private final long[] recordIndices;
    private final int length;
    private final int[] ids;
    private final int[] attentionMask;
    private final int[] labels;

    SpinBatch(long[] recordIndices, int length, int[] ids, int[] attentionMask, int[] labels) {
        this.recordIndices = recordIndices;
        this.length = length;
        this.ids = ids;
        this.attentionMask = attentionMask;
        this.labels = labels;
    }

    /** B: records in the batch. */
    public int records() {
        return recordIndices.length;
    }

    /** 2B: real rows then generated rows. */
    public int rows() {
        return 2 * records();
    }

    /** T: the longest row's length. */
    public int length() {
        return length;
    }

    /** The dataset position of record b (rows b and B + b). */
    public long recordIndex(int b) {
        return recordIndices[b];
    }

    public int[] ids() {
        return ids.clone();
    }

    public int[] attentionMask() {
        return attentionMask.clone();
    }

    public int[] labels() {
        return labels.clone();
    }

    /**
     * Next-token targets, [2B, T]: {@code targets[t] = labels[t + 1]} and the last position of each
     * row is -100, so that the log-prob at position t scores the token at t + 1 (HF's
     * {@code labels[:, 1:]} against {@code logits[:, :-1]}). The one place this shift is made.
     */
    public int[] targets() {
        int[] targets = new int[labels.length];
        for (int r = 0; r < rows(); r++) {
            int row = r * length;
            System.arraycopy(labels, row + 1, targets, row, length - 1);
            targets[row + length - 1] = Backend.IGNORE_INDEX;
        }
        return targets;
    }

    /** The model inputs on a backend: ids, key mask (the attention mask) and targets, all I32 [2B, T]. */
    public record Tensors(Tensor ids, Tensor keyMask, Tensor targets) implements AutoCloseable {
        @Override
        public void close() {
            ids.close();
            keyMask.close();
            targets.close();
        }
    }

    public Tensors upload(Backend backend) {
        Tensor idTensor = backend.fromHost(ids, rows(), length);
        Tensor maskTensor = backend.fromHost(attentionMask, rows(), length);
        return new Tensors(idTensor, maskTensor, backend.fromHost(targets(), rows(), length));
    }

    @Override
    public String toString() {
        return "SpinBatch[records=" + Arrays.toString(recordIndices) + ", T=" + length + "]";
    }
}
