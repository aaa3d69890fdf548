package spin.data;

import java.util.Arrays;
import java.util.List;
import spin.backend.Backend;
import spin.text.ChatTemplate;
import spin.text.TokenEncoder;

/**
 * Records to padded batches: renders each record's texts ({@link SpinTextFormat}), tokenizes them
 * by the reference's rules ({@link SpinRowEncoder}) and pads a list of them into a {@link SpinBatch}
 * as the reference does in two steps. Its SPINDataCollatorWithPadding pads the real rows to the
 * longest real row and the generated rows to the longest generated row (input ids with the pad id,
 * attention mask 0, labels -100, on the right); its trainer's concatenated_inputs then pads both
 * halves to the longer of the two with input id {@value #CONCATENATED_PAD_ID} (its padding_value).
 * Padding is never attended to nor scored, so the pad ids change only what the model computes at
 * padded positions, which the reference's logits/* metrics average over.
 */
public final class SpinCollator {
    private final SpinTextFormat format;
    private final SpinRowEncoder encoder;
    /** The input id SPINTrainer.concatenated_inputs pads with (its padding_value, default 0). */
    static final int CONCATENATED_PAD_ID = 0;

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
        int realLength = 0, generatedLength = 0;
        for (SpinFeatures f : records) {
            realLength = Math.max(realLength, f.real().length());
            generatedLength = Math.max(generatedLength, withGenerated ? f.generated().length() : 0);
        }
        int length = Math.max(realLength, generatedLength);
        int[] ids = new int[rowsPerRecord * b * length];
        int[] mask = new int[ids.length];
        int[] labels = new int[ids.length];
        Arrays.fill(labels, Backend.IGNORE_INDEX);
        long[] indices = new long[b];
        for (int r = 0; r < b; r++) {
            SpinFeatures f = records.get(r);
            indices[r] = f.index();
            place(f.real(), r * length, realLength, length, ids, mask, labels);
            if (withGenerated) {
                place(f.generated(), (b + r) * length, generatedLength, length, ids, mask, labels);
            }
        }
        return new SpinBatch(indices, rowsPerRecord, length, ids, mask, labels);
    }

    /** One row at {@code at}: its tokens, the pad id up to its half's longest row, then the concatenation's pad id. */
    private void place(TokenRow row, int at, int halfLength, int length, int[] ids, int[] mask, int[] labels) {
        Arrays.fill(ids, at + row.length(), at + halfLength, padId);
        Arrays.fill(ids, at + halfLength, at + length, CONCATENATED_PAD_ID);
        System.arraycopy(row.ids(), 0, ids, at, row.length());
        System.arraycopy(row.attentionMask(), 0, mask, at, row.length());
        System.arraycopy(row.labels(), 0, labels, at, row.length());
    }
}
