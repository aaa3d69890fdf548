package spin.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.data.SftReformatter;
import spin.data.SpinDatasetWriter;

/** {@code spin reformat}: an SFT dataset (ultrachat_200k layout) to SPIN's iteration-0 splits. */
@Command(name = "reformat", mixinStandardHelpOptions = true,
        description = "Turn an SFT dataset with \"messages\" into SPIN records (first user turn and its answer as real, "
                + "an empty generated answer) in " + SpinDatasetWriter.TRAIN_FILE + " and " + SpinDatasetWriter.TEST_FILE + ".")
public final class ReformatCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--data", required = true, description = "dataset directory (HF layout: [data/]SPLIT-*.parquet, SPLIT.jsonl, ...)")
    private Path data;

    @Option(names = "--output-dir", required = true, description = "where the two parquet files go")
    private Path outputDir;

    @Option(names = "--train-split", defaultValue = "train_sft", description = "split to reformat as train (default ${DEFAULT-VALUE})")
    private String trainSplit;

    @Option(names = "--test-split", defaultValue = "test_sft", description = "split to reformat as test (default ${DEFAULT-VALUE})")
    private String testSplit;

    @Option(names = "--skip-invalid", description = "skip rows without a user turn and its answer, and report how many")
    private boolean skipInvalid;

    @Override
    public Integer call() throws Exception {
        SftReformatter.Report r = SftReformatter.reformat(data, outputDir, trainSplit, testSplit, skipInvalid);
        PrintWriter out = spec.commandLine().getOut();
        out.printf("Wrote %,d train and %,d test records to %s%n", r.train(), r.test(), outputDir);
        Skips.report(out, r.skipped(), r.firstProblem());
        return 0;
    }
}
