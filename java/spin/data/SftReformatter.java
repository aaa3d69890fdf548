package spin.data;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The reference's reformat.py: an SFT dataset with {@code messages} (ultrachat_200k's layout, splits
 * train_sft and test_sft) becomes the SPIN splits {@code train_prefs-00000-of-00001.parquet} and
 * {@code test_prefs-00000-of-00001.parquet}, one record per row, with empty generated answers.
 */
public final class SftReformatter {
    private SftReformatter() {}

    /** Rows written per split and rows skipped as invalid, with the first problem met. */
    public record Report(int train, int test, int skipped, String firstProblem) {}

    public static Report reformat(Path data, Path outputDir, String trainSplit, String testSplit, boolean skipInvalid)
            throws IOException {
        DatasetReader.Result<SpinRecord> train = DatasetReader.readNonEmpty(DatasetFiles.splitFiles(data, trainSplit),
                SftRows::parse, skipInvalid);
        DatasetReader.Result<SpinRecord> test = DatasetReader.read(DatasetFiles.splitFiles(data, testSplit),
                SftRows::parse, skipInvalid);
        SpinDatasetWriter.write(outputDir.resolve(SpinDatasetWriter.TRAIN_FILE), train.values());
        SpinDatasetWriter.write(outputDir.resolve(SpinDatasetWriter.TEST_FILE), test.values());
        return new Report(train.rows().size(), test.rows().size(), train.skipped() + test.skipped(),
                train.firstProblem() != null ? train.firstProblem() : test.firstProblem());
    }
}
