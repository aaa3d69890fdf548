package spin.data;

import java.util.ArrayList;
import java.util.List;

/**
 * How the reference picks data: {@code dataset.shuffle(seed=42)} (HF datasets, numpy's generator)
 * and then the fraction {@code data_frac} of {@code frac_len} rows that one generation job handles.
 */
public final class DataSelection {
    /** The reference's seed for shuffling before slicing into fractions and for mixing. */
    public static final long REFERENCE_SEED = 42;

    private DataSelection() {}

    /** {@code rows} in the order HF datasets' {@code shuffle(seed=seed)} gives. */
    public static <T> List<T> shuffled(List<T> rows, long seed) {
        int[] order = NumpyPermutation.permutation(rows.size(), seed);
        List<T> out = new ArrayList<>(rows.size());
        for (int i : order) {
            out.add(rows.get(i));
        }
        return out;
    }

    /**
     * Rows {@code [fracLen * fracIndex, fracLen * (fracIndex + 1))}, cut at the end of the data, as
     * the reference's generate.py slices; {@code fracLen == 0} means all rows.
     */
    public static <T> List<T> fraction(List<T> rows, int fracLen, int fracIndex) {
        if (fracLen < 0 || fracIndex < 0) {
            throw new IllegalArgumentException("frac_len and data_frac must be >= 0, got " + fracLen + " and " + fracIndex);
        }
        if (fracLen == 0) {
            return rows;
        }
        long start = (long) fracLen * fracIndex;
        if (start >= rows.size()) {
            throw new IllegalArgumentException("fraction " + fracIndex + " of " + fracLen + " rows starts at row " + start
                    + " but the data has " + rows.size() + " rows; the last fraction is " + ((rows.size() - 1) / fracLen));
        }
        return rows.subList((int) start, (int) Math.min(rows.size(), start + fracLen));
    }
}
