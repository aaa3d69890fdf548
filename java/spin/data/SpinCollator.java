package spin.data;

import java.util.Arrays;
import java.util.List;
import spin.backend.Backend;
import spin.text.ChatTemplate;
import spin.text.TokenEncoder;

/**
 * Records to padded batches: renders each record's texts ({@link SpinTextFormat}), tokenizes them
 * by the reference's rules ({@link SpinRowEncoder}) and pads a list of them into a {@link SpinBatch}
 * as the reference's SPINDataCollatorWithPadding does: input ids with the pad id, attention mask
 * with 0, labels with -100, on the right, up to the batch's longest row (not to max_length).
 */
public final class SpinCollator {
    private final SpinTextFormat format;
    private final SpinRowEncoder encoder;
    private final int padId;

    public SpinCollator(TokenEncoder tokenizer, ChatTemplate template, int padId, SequenceLimits limits) {
        this.format = new SpinTextFormat(template);
        this.encoder = new SpinRowEncoder(tokenizer, limits);
        this.padId = padId;
    }

    public SpinFeatures features(long index, SpinRecord record) {
        return encoder.encode(index, format.render(record));
    }

    public SpinBatch collate(List<SpinFeatures> records) {
        return pad(records, true);
    }

    /** The real rows only, [B, T]: supervised fine-tuning on the dataset's answers. */
    public SpinBatch collateReal(List<SpinFeatures> records) {
        return pad(records, false);
    }

    private SpinBatch pad(List<SpinFeatures> records, boolean withGenerated) {
        if (records.isEmpty()) {
            throw new IllegalArgumentException("a batch needs at least one record");
        }
        int b = records.size();
        int rowsPerRecord = withGenerated ? 2 : 1;
        int length = 0;
        for (SpinFeatures f : records) {
            length = Math.max(length, withGenerated ? Math.max(f.real().length(), f.generated().length()) : f.real().length());
        }
        int[] ids = new int[rowsPerRecord * b * length];
        int[] mask = new int[ids.length];
        int[] labels = new int[ids.length];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Backend.IGNORE_INDEX);
        long[] indices = new long[b];
        for (int r = 0; r < b; r++) {
            SpinFeatures f = records.get(r);
            indices[r] = f.index();
            place(f.real(), r * length, ids, mask, labels);
            if (withGenerated) {
                place(f.generated(), (b + r) * length, ids, mask, labels);
            }
        }
        return new SpinBatch(indices, rowsPerRecord, length, ids, mask, labels);
    }

    private static void place(TokenRow row, int at, int[] ids, int[] mask, int[] labels) {
        System.arraycopy(row.ids(), 0, ids, at, row.length());
        System.arraycopy(row.attentionMask(), 0, mask, at, row.length());
        System.arraycopy(row.labels(), 0, labels, at, row.length());
    }
}
