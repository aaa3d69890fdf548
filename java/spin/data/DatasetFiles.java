package spin.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * Finds the files of a dataset split. A file path is the data itself. In a directory (or its
 * {@code data/} folder, the HF hub layout) a split's files are the .parquet, .jsonl and .json files
 * whose name is the split name followed by '-', '.', '_' or a digit, as HF datasets matches them:
 * split "train" finds {@code train_prefs-00000-of-00001.parquet}, "train_sft" finds
 * {@code train_sft-00000-of-00003-a1b2.parquet}. Files of two different splits (train_sft and
 * train_gen for "train") are refused as ambiguous.
 */
public final class DatasetFiles {
    private static final List<String> EXTENSIONS = List.of(".parquet", ".jsonl", ".json");

    private DatasetFiles() {}

    public static boolean isDataFile(Path file) {
        String name = file.getFileName().toString();
        return EXTENSIONS.stream().anyMatch(name::endsWith);
    }

    /** The files holding {@code split} of the dataset at {@code path}, sorted by name. */
    public static List<Path> splitFiles(Path path, String split) throws IOException {
        if (Files.isRegularFile(path)) {
            if (!isDataFile(path)) {
                throw new IOException(path + ": unknown data format; use .parquet, .jsonl or .json");
            }
            return List.of(path);
        }
        if (!Files.isDirectory(path)) {
            throw new NoSuchFileException(path.toString());
        }
        List<Path> found = new ArrayList<>();
        for (Path dir : List.of(path, path.resolve("data"))) {
            if (Files.isDirectory(dir)) {
                try (Stream<Path> files = Files.list(dir)) {
                    files.filter(f -> Files.isRegularFile(f) && isDataFile(f) && belongsTo(f, split)).forEach(found::add);
                }
            }
        }
        if (found.isEmpty()) {
            throw new NoSuchFileException(path.toString(), null, "no files of split \"" + split + "\" (looked for "
                    + split + "-*.parquet, " + split + ".jsonl and the like, here and in data/)");
        }
        TreeSet<String> stems = new TreeSet<>();
        found.forEach(f -> stems.add(stem(f)));
        if (stems.size() > 1) {
            throw new IOException(path + ": split \"" + split + "\" matches files of " + stems + "; name one of those instead");
        }
        found.sort(null);
        return found;
    }

    private static boolean belongsTo(Path file, String split) {
        String name = file.getFileName().toString();
        if (!name.startsWith(split) || name.length() == split.length()) {
            return false;
        }
        char next = name.charAt(split.length());
        return next == '-' || next == '.' || next == '_' || Character.isDigit(next);
    }

    /** The split a file names: everything before its first '-' or '.'. */
    private static String stem(Path file) {
        String name = file.getFileName().toString();
        int end = name.length();
        for (char c : new char[] {'-', '.'}) {
            int i = name.indexOf(c);
            if (i >= 0) {
                end = Math.min(end, i);
            }
        }
        return name.substring(0, end);
    }
}
