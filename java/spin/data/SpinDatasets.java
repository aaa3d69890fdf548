package spin.data;

import java.io.IOException;
import java.nio.file.Path;

/** Loads SPIN records (real + generated) from a data file or a split of a dataset directory. */
public final class SpinDatasets {
    private SpinDatasets() {}

    public static DatasetReader.Result<SpinRecord> load(Path path, String split, boolean skipInvalid) throws IOException {
        return DatasetReader.read(DatasetFiles.splitFiles(path, split), SpinRows::parse, skipInvalid);
    }
}
