package spin.data;

import java.util.Arrays;
import spin.backend.Backend;
import spin.backend.Tensor;

/**
 * B records as 2B rows of length T, right-padded to the longest row of the batch: rows 0..B-1 are
 * prompt + real answer, rows B..2B-1 prompt + generated answer, record by record (the reference's
 * concatenated_forward). Padding has the pad id, attention mask 0 and label -100. Arrays are
 * row-major [2B, T]. A batch of real answers only (supervised fine-tuning) has just the B real rows.
 */
public final class SpinBatch {
    private final long[] recordIndices;
    private final int rowsPerRecord;
    private final int length;
    private final int[] ids;
    private final int[] attentionMask;
    private final int[] labels;

    SpinBatch(long[] recordIndices, int rowsPerRecord, int length, int[] ids, int[] attentionMask, int[] labels) {
        this.recordIndices = recordIndices;
        this.rowsPerRecord = rowsPerRecord;
        this.length = length;
        this.ids = ids;
        this.attentionMask = attentionMask;
        this.labels = labels;
    }

    /**
     * A batch from already tokenized rows, [rows, length] row-major: {@code pairs} says whether the
     * rows are B real then B generated (SPIN) or B real only (SFT).
     */
    public static SpinBatch of(long[] recordIndices, boolean pairs, int length, int[] ids, int[] attentionMask, int[] labels) {
        int rows = (pairs ? 2 : 1) * recordIndices.length;
        for (int[] a : new int[][] {ids, attentionMask, labels}) {
            if (a.length != rows * length) {
                throw new IllegalArgumentException("a batch of " + rows + " rows of length " + length + " needs "
                        + rows * length + " values per array, got " + a.length);
            }
        }
        return new SpinBatch(recordIndices.clone(), pairs ? 2 : 1, length, ids.clone(), attentionMask.clone(), labels.clone());
    }

    /** B: records in the batch. */
    public int records() {
        return recordIndices.length;
    }

    /** 2B: real rows then generated rows (B for a real-only batch). */
    public int rows() {
        return rowsPerRecord * records();
    }

    /** Scored target tokens over all rows (labels other than -100, after the shift). */
    public int scoredTokens() {
        int n = 0;
        for (int r = 0; r < rows(); r++) {
            for (int t = 1; t < length; t++) { // position 0's label is never a target
                n += labels[r * length + t] == Backend.IGNORE_INDEX ? 0 : 1;
            }
        }
        return n;
    }

    /** Tokens the model reads (attention mask 1), the unit of tokens/s. */
    public int attendedTokens() {
        int n = 0;
        for (int m : attentionMask) {
            n += m;
        }
        return n;
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
