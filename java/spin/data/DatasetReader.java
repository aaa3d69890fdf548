package spin.data;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads rows from .parquet, .jsonl and .json files and turns each into a value with a
 * {@link RowParser}. An invalid row stops the read with its {@link InvalidRowException}, or, when
 * skipping is asked for, is counted and left out; either way the rows keep their positions.
 * {@link #readNonEmpty} also refuses a file without a single row.
 */
public final class DatasetReader {
    private DatasetReader() {}

    /** Receives rows in file order. */
    @FunctionalInterface
    interface RowSink {
        void accept(DataRow row) throws IOException;
    }

    /** Validates one row; throws {@link InvalidRowException}. */
    @FunctionalInterface
    public interface RowParser<T> {
        T parse(DataRow row);
    }

    /** A value with its position in the dataset (counting every row of every file, valid or not). */
    public record Indexed<T>(long index, T value) {}

    /**
     * @param skipped rows left out as invalid
     * @param firstProblem what was wrong with the first of them, or null
     */
    public record Result<T>(List<Indexed<T>> rows, int skipped, String firstProblem) {
        public List<T> values() {
            return rows.stream().map(Indexed::value).toList();
        }
    }

    /** Reads every row of {@code files}; a file may hold none (an empty test split is a valid split). */
    public static <T> Result<T> read(List<Path> files, RowParser<T> parser, boolean skipInvalid) throws IOException {
        return read(files, parser, skipInvalid, false);
    }

    /**
     * Reads the data a command exists to process (records to score, answer or train on), where a
     * file without a single row is surely not the file meant: it is refused, by name.
     */
    public static <T> Result<T> readNonEmpty(List<Path> files, RowParser<T> parser, boolean skipInvalid) throws IOException {
        return read(files, parser, skipInvalid, true);
    }

    private static <T> Result<T> read(List<Path> files, RowParser<T> parser, boolean skipInvalid, boolean refuseEmpty)
            throws IOException {
        List<Indexed<T>> rows = new ArrayList<>();
        int[] skipped = {0};
        String[] firstProblem = {null};
        long[] index = {0};
        for (Path file : files) {
            long before = index[0];
            forEachRow(file, row -> {
                long at = index[0]++;
                try {
                    rows.add(new Indexed<>(at, parser.parse(row)));
                } catch (InvalidRowException e) {
                    if (!skipInvalid) {
                        throw e;
                    }
                    if (skipped[0]++ == 0) {
                        firstProblem[0] = e.problem();
                    }
                }
            });
            if (refuseEmpty && index[0] == before) {
                throw new IOException(file + ": holds no records (the file is empty, blank or an empty array); "
                        + "give a data file with at least one record");
            }
        }
        return new Result<>(rows, skipped[0], firstProblem[0]);
    }

    static void forEachRow(Path file, RowSink sink) throws IOException {
        String name = file.getFileName().toString();
        if (name.endsWith(".parquet")) {
            ParquetFiles.read(file, sink);
        } else if (name.endsWith(".jsonl") || name.endsWith(".json")) {
            JsonRows.read(file, sink);
        } else {
            throw new IOException(file + ": unknown data format; use .parquet, .jsonl or .json");
        }
    }
}
