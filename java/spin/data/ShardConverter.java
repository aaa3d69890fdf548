package spin.data;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import spin.text.ChatMessage;

/**
 * The reference's convert_data.py: gathers an iteration's generation shards, left-strips the
 * generated answers (Python's {@code str.lstrip}) and writes the train and test splits as Parquet.
 *
 * <p>Overlapping fractions and a shard generated twice are found by the records' rows in the source
 * split ({@link GenerationShards#SOURCE_INDEX}, which spin generate writes): one source row met twice
 * within a split is refused. Rows whose content the source data repeats (the reference's own
 * SPIN_iter0 holds 99,584 rows of which 49,792 are distinct) have distinct source rows and are kept,
 * and counted. Shards without source rows (written by another tool) cannot be checked for overlap;
 * the report counts them.
 */
public final class ShardConverter {
    private ShardConverter() {}

    /**
     * @param repeated records whose real conversation an earlier record of the same split has too (kept)
     * @param unpositioned records without a source row, so not checked for overlap
     */
    public record Report(int train, int test, int skipped, String firstProblem, int repeated, int unpositioned) {}

    public static Report convert(Path inputDir, Path outputDir, int numFracs, boolean skipInvalid) throws IOException {
        GenerationShards.Shards shards = GenerationShards.find(inputDir, numFracs);
        DatasetReader.Result<Located> train = DatasetReader.readNonEmpty(shards.train(), ShardConverter::parse, skipInvalid);
        DatasetReader.Result<Located> test = DatasetReader.read(shards.test(), ShardConverter::parse, skipInvalid);
        refuseOverlaps(train.values());
        refuseOverlaps(test.values());
        SpinDatasetWriter.write(outputDir.resolve(SpinDatasetWriter.TRAIN_FILE), records(train.values()));
        SpinDatasetWriter.write(outputDir.resolve(SpinDatasetWriter.TEST_FILE), records(test.values()));
        return new Report(train.rows().size(), test.rows().size(), train.skipped() + test.skipped(),
                train.firstProblem() != null ? train.firstProblem() : test.firstProblem(),
                repeated(train.values()) + repeated(test.values()), unpositioned(train.values()) + unpositioned(test.values()));
    }

    /** A converted record, its source row (-1: unknown) and the place it was read from, for reports. */
    private record Located(SpinRecord record, long sourceIndex, String where) {}

    private static Located parse(DataRow row) {
        SpinRecord r = SpinRows.parse(row);
        List<ChatMessage> generated = new ArrayList<>(r.generated().size());
        for (ChatMessage m : r.generated()) {
            generated.add(m.role().equals(ChatMessage.ASSISTANT)
                    ? new ChatMessage(m.role(), PythonWhitespace.lstrip(m.content())) : m);
        }
        return new Located(new SpinRecord(r.real(), generated), GenerationShards.sourceIndex(row), row.where());
    }

    private static void refuseOverlaps(List<Located> rows) throws IOException {
        Map<Long, String> seen = new HashMap<>();
        for (Located row : rows) {
            if (row.sourceIndex() < 0) {
                continue;
            }
            String first = seen.putIfAbsent(row.sourceIndex(), row.where());
            if (first != null) {
                throw new IOException(row.where() + ": source row " + row.sourceIndex() + " is also at " + first
                        + "; two fractions overlap or a shard was generated twice (another --frac-len?)."
                        + " Remove the stray shard, or regenerate the fractions with one --frac-len");
            }
        }
    }

    private static int repeated(List<Located> rows) {
        Set<List<ChatMessage>> seen = new HashSet<>();
        int repeated = 0;
        for (Located row : rows) {
            repeated += seen.add(row.record().real()) ? 0 : 1;
        }
        return repeated;
    }

    private static int unpositioned(List<Located> rows) {
        return (int) rows.stream().filter(r -> r.sourceIndex() < 0).count();
    }

    private static List<SpinRecord> records(List<Located> rows) {
        return rows.stream().map(Located::record).toList();
    }
}
