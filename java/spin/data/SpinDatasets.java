package spin.data;

import java.io.IOException;
import java.nio.file.Path;

/** Loads SPIN records (real + generated) from a data file or a split of a dataset directory. */
public final class SpinDatasets {
    private SpinDatasets() {}

    /** Every record of the split; its files may be empty (a dataset without test records). */
    public static DatasetReader.Result<SpinRecord> load(Path path, String split, boolean skipInvalid) throws IOException {
        return DatasetReader.read(DatasetFiles.splitFiles(path, split), SpinRows::parse, skipInvalid);
    }

    /** As {@link #load}, refusing a file without records: for data a command exists to process. */
    public static DatasetReader.Result<SpinRecord> loadNonEmpty(Path path, String split, boolean skipInvalid) throws IOException {
        return DatasetReader.readNonEmpty(DatasetFiles.splitFiles(path, split), SpinRows::parse, skipInvalid);
    }
}
