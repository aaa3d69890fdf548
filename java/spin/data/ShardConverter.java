package spin.data;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import spin.text.ChatMessage;

/**
 * The reference's convert_data.py: gathers an iteration's generation shards, left-strips the
 * generated answers (Python's {@code str.lstrip}) and writes the train and test splits as Parquet.
 * A real conversation met twice within a split is refused, since it means a shard was generated
 * twice or two fractions overlap; datasets that really repeat a conversation may allow it.
 */
public final class ShardConverter {
    private ShardConverter() {}

    public record Report(int train, int test, int skipped, String firstProblem) {}

    public static Report convert(Path inputDir, Path outputDir, int numFracs, boolean allowDuplicates, boolean skipInvalid)
            throws IOException {
        GenerationShards.Shards shards = GenerationShards.find(inputDir, numFracs);
        DatasetReader.Result<Located> train = DatasetReader.readNonEmpty(shards.train(), ShardConverter::parse, skipInvalid);
        DatasetReader.Result<Located> test = DatasetReader.read(shards.test(), ShardConverter::parse, skipInvalid);
        if (!allowDuplicates) {
            refuseDuplicates(train.values());
            refuseDuplicates(test.values());
        }
        SpinDatasetWriter.write(outputDir.resolve(SpinDatasetWriter.TRAIN_FILE), records(train.values()));
        SpinDatasetWriter.write(outputDir.resolve(SpinDatasetWriter.TEST_FILE), records(test.values()));
        return new Report(train.rows().size(), test.rows().size(), train.skipped() + test.skipped(),
                train.firstProblem() != null ? train.firstProblem() : test.firstProblem());
    }

    /** A converted record and the place it was read from, for duplicate reports. */
    private record Located(SpinRecord record, String where) {}

    private static Located parse(DataRow row) {
        SpinRecord r = SpinRows.parse(row);
        List<ChatMessage> generated = new ArrayList<>(r.generated().size());
        for (ChatMessage m : r.generated()) {
            generated.add(m.role().equals(ChatMessage.ASSISTANT)
                    ? new ChatMessage(m.role(), PythonWhitespace.lstrip(m.content())) : m);
        }
        return new Located(new SpinRecord(r.real(), generated), row.where());
    }

    private static void refuseDuplicates(List<Located> rows) throws IOException {
        Map<List<ChatMessage>, String> seen = new HashMap<>();
        for (Located row : rows) {
            String first = seen.putIfAbsent(row.record().real(), row.where());
            if (first != null) {
                throw new IOException(row.where() + ": duplicate of " + first
                        + " (the same real conversation); a shard was generated twice or two fractions overlap."
                        + " Regenerate the shard, or pass --allow-duplicates if the source data repeats it");
            }
        }
    }

    private static List<SpinRecord> records(List<Located> rows) {
        return rows.stream().map(Located::record).toList();
    }
}
