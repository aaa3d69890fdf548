package spin.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import spin.io.AtomicFiles;

/**
 * The generation shards of one iteration in a directory: {@code loser_{k}.jsonl} (train fraction k)
 * and {@code loser_{k}_test.jsonl} (test fraction k), as the reference's generate.py names them.
 * Gaps are reported by number, and two files with the same number ({@code loser_1.jsonl},
 * {@code loser_01.jsonl}) are refused.
 */
public final class GenerationShards {
    /**
     * The key spin adds to each shard line beside the reference's "real" and "generated": the record's
     * row in the source split (counting from 0, before the shuffle), so that convert can tell two
     * fractions that overlap, or a shard generated twice, from rows the source data really repeats.
     */
    public static final String SOURCE_INDEX = "source_index";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern NAME = Pattern.compile("loser_(\\d+)(_test)?\\.jsonl");

    private GenerationShards() {}

    /** The shard of fraction {@code fraction}: {@code loser_{k}_test.jsonl} for the test split, {@code loser_{k}.jsonl} otherwise. */
    public static String fileName(int fraction, boolean test) {
        return "loser_" + fraction + (test ? "_test" : "") + ".jsonl";
    }

    /** Writes a shard atomically: one JSON line per record, with its {@link #SOURCE_INDEX}. */
    public static void write(Path file, List<SpinRecord> records, long[] sourceIndexes) throws IOException {
        if (records.size() != sourceIndexes.length) {
            throw new IllegalArgumentException(records.size() + " records but " + sourceIndexes.length + " source indexes");
        }
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < records.size(); i++) {
            ObjectNode line = SpinDatasetWriter.node(records.get(i)).put(SOURCE_INDEX, sourceIndexes[i]);
            out.append(JSON.writeValueAsString(line)).append('\n');
        }
        AtomicFiles.writeString(file, out.toString());
    }

    /**
     * The row's {@link #SOURCE_INDEX}, or -1 when it has none (a shard written by another tool, such
     * as the reference's generate.py).
     */
    public static long sourceIndex(DataRow row) {
        JsonNode index = row.value().get(SOURCE_INDEX);
        if (index == null || index.isNull()) {
            return -1;
        }
        if (!index.canConvertToExactIntegral() || !index.canConvertToLong() || index.asLong() < 0) {
            throw new InvalidRowException(row, SOURCE_INDEX, "must be a row number >= 0, got " + index);
        }
        return index.asLong();
    }

    /** Whether {@code name} is a shard's file name ({@code loser_{k}.jsonl} or {@code loser_{k}_test.jsonl}). */
    public static boolean isShardName(String name) {
        return NAME.matcher(name).matches();
    }

    /** The train and test shard files, each in fraction order. */
    public record Shards(List<Path> train, List<Path> test) {}

    /**
     * @param trainFractions how many train shards to take (0..n-1, more are left alone as the
     *     reference does), or 0 to take as many as the highest number found says; test shards are
     *     always taken up to the highest found
     */
    public static Shards find(Path dir, int trainFractions) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new NoSuchFileException(dir.toString(), null, "no such directory of generation shards");
        }
        TreeMap<Integer, Path> train = new TreeMap<>(), test = new TreeMap<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) {
                Matcher m = NAME.matcher(f.getFileName().toString());
                if (!m.matches()) {
                    continue;
                }
                int k;
                try {
                    k = Integer.parseInt(m.group(1));
                } catch (NumberFormatException e) {
                    throw new IOException(f + ": shard number out of range");
                }
                Path previous = (m.group(2) == null ? train : test).putIfAbsent(k, f);
                if (previous != null) {
                    throw new IOException(dir + ": " + previous.getFileName() + " and " + f.getFileName()
                            + " are both shard " + k + "; remove one of them");
                }
            }
        }
        if (train.isEmpty()) {
            throw new NoSuchFileException(dir.toString(), null, "no loser_{k}.jsonl generation shards; run generation first");
        }
        if (test.isEmpty()) {
            throw new NoSuchFileException(dir.toString(), null, "no loser_{k}_test.jsonl generation shards; generate the test split too");
        }
        int trainCount = trainFractions > 0 ? trainFractions : train.lastKey() + 1;
        List<String> missing = new ArrayList<>();
        List<Path> trainFiles = collect(train, trainCount, "loser_%d.jsonl", missing);
        List<Path> testFiles = collect(test, test.lastKey() + 1, "loser_%d_test.jsonl", missing);
        if (!missing.isEmpty()) {
            throw new IOException(dir + ": missing generation shards " + String.join(", ", missing)
                    + "; generate those fractions" + (trainFractions > 0 ? " or lower --num-fracs" : ""));
        }
        return new Shards(trainFiles, testFiles);
    }

    private static List<Path> collect(TreeMap<Integer, Path> found, int count, String format, List<String> missing) {
        List<Path> files = new ArrayList<>();
        for (int k = 0; k < count; k++) {
            Path f = found.get(k);
            if (f == null) {
                missing.add(String.format(format, k));
            } else {
                files.add(f);
            }
        }
        return files;
    }
}
