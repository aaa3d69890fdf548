package spin.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.data.GenerationShards;
import spin.data.ShardConverter;
import spin.data.SpinDatasetWriter;

/** {@code spin convert}: an iteration's generation shards to the next training data. */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Gather loser_{k}.jsonl and loser_{k}_test.jsonl, left-strip the generated answers and write "
                + SpinDatasetWriter.TRAIN_FILE + " and " + SpinDatasetWriter.TEST_FILE + ".")
public final class ConvertCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--input-dir", required = true, description = "directory of generation shards")
    private Path inputDir;

    @Option(names = "--output-dir", required = true, description = "where the two parquet files go")
    private Path outputDir;

    @Option(names = "--num-fracs", defaultValue = "0",
            description = "train shards to take, loser_0 .. loser_{N-1} (default: up to the highest one present)")
    private int numFracs;

    @Option(names = "--skip-invalid", description = "skip invalid rows and report how many")
    private boolean skipInvalid;

    @Override
    public Integer call() throws Exception {
        if (numFracs < 0) {
            throw new IllegalArgumentException("--num-fracs must be positive, got " + numFracs);
        }
        ShardConverter.Report r = ShardConverter.convert(inputDir, outputDir, numFracs, skipInvalid);
        PrintWriter out = spec.commandLine().getOut();
        out.printf("Wrote %,d train and %,d test records to %s%n", r.train(), r.test(), outputDir);
        if (r.repeated() > 0) {
            out.printf("%,d record%s repeat%s a real conversation of an earlier row (the source data repeats %s; kept)%n",
                    r.repeated(), r.repeated() == 1 ? "" : "s", r.repeated() == 1 ? "s" : "", r.repeated() == 1 ? "it" : "them");
        }
        if (r.unpositioned() > 0) {
            out.printf("note: %,d record%s carry no %s (shards written by another tool), so overlapping fractions"
                    + " could not be checked there%n", r.unpositioned(), r.unpositioned() == 1 ? "" : "s",
                    GenerationShards.SOURCE_INDEX);
        }
        Skips.report(out, r.skipped(), r.firstProblem());
        return 0;
    }
}
