package spin.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.backend.DeviceSpec;
import spin.data.DataSelection;
import spin.data.DatasetReader;
import spin.data.DatasetReader.Indexed;
import spin.data.GenerationRecords;
import spin.data.GenerationShards;
import spin.data.PromptFormat;
import spin.data.SpinDatasets;
import spin.data.SpinRecord;
import spin.data.SpinRows;
import spin.dist.World;
import spin.generate.Generation;
import spin.generate.GenerationRequest;
import spin.generate.StopCriteria;
import spin.io.AtomicFiles;
import spin.io.OutputLock;
import spin.model.MistralConfig;
import spin.text.ChatTemplate;
import spin.text.Tokenizer;

/**
 * {@code spin generate}: step 1 of a SPIN iteration, as the reference's generate.py. The model
 * answers the first user turn of every record of one fraction of the shuffled data; the answers
 * are written, with the gold answers, as the generation shard {@code loser_{k}[_test].jsonl}.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Answer every prompt of a data fraction with the model (continuous batching on the CPU) and write "
                + "loser_{K}.jsonl, or loser_{K}_test.jsonl for the test split.")
public final class GenerateCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = "HF model directory with config.json, weights and tokenizer files")
    private Path model;

    @Option(names = "--input-dir", required = true,
            description = "SPIN records: a dataset directory (train_prefs/test_prefs files, as reformat and convert write) or a file")
    private Path inputDir;

    @Option(names = "--output-dir", required = true, description = "where the generation shards go")
    private Path outputDir;

    @Option(names = "--split", defaultValue = "train", description = "train | test (default ${DEFAULT-VALUE})")
    private String split;

    @Option(names = "--frac-len", defaultValue = "0", description = "records per fraction; 0 = all in one (default ${DEFAULT-VALUE})")
    private int fracLen;

    @Option(names = "--data-frac", defaultValue = "0", description = "which fraction to generate (default ${DEFAULT-VALUE})")
    private int dataFrac;

    @Option(names = "--num-fracs",
            description = "generate fractions 0 .. N-1 in one run instead of --data-frac (the model is loaded once)")
    private Integer numFracs;

    @Option(names = "--resume", description = "skip fractions whose shard is already complete")
    private boolean resume;

    @Mixin
    private GenerationOptions options;

    @Mixin
    private DeviceOptions device;

    @Mixin
    private LaunchOptions launch;

    @Override
    public Integer call() throws Exception {
        String deviceText = launch.device(device.device);
        World world = launch.resolve(deviceText == null ? DeviceSpec.CPU : DeviceSpec.parse(deviceText));
        if (!world.isSingleProcess()) {
            // the shards of one --output-dir are written by one process; splitting a fraction across processes would need them to merge
            throw new IllegalArgumentException("spin generate drives the devices of one process, but the launch gives "
                    + world.describe() + "; start it once per node with --devices N (or --gpus N) and its own --output-dir "
                    + "and --data-frac, or outside torchrun/srun");
        }
        options.validate();
        options.validate(MistralConfig.read(model), model);
        if (!split.equals("train") && !split.equals("test")) {
            throw new IllegalArgumentException("--split must be train or test, got \"" + split + "\"");
        }
        if (fracLen < 0 || dataFrac < 0 || numFracs != null && numFracs < 1) {
            throw new IllegalArgumentException("--frac-len and --data-frac must be >= 0 and --num-fracs >= 1");
        }
        if (numFracs != null && fracLen == 0) {
            throw new IllegalArgumentException("--num-fracs needs --frac-len > 0 (with --frac-len 0 there is one fraction, all records)");
        }
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        // before the data and the model are loaded: a directory in use or not writable is refused at once
        try (OutputLock lock = OutputLock.acquire(outputDir, "--output-dir", "spin generate")) {
            List<Path> swept = AtomicFiles.sweep(outputDir, GenerationShards::isShardName);
            if (!swept.isEmpty()) {
                out.printf("removed %d leftover temporary file%s of an interrupted run from %s%n", swept.size(),
                        swept.size() == 1 ? "" : "s", outputDir);
            }
            return generateFractions(world, out, err);
        }
    }

    private int generateFractions(World world, PrintWriter out, PrintWriter err) throws IOException {
        // an empty test split is carried through (iterate generates it as it is); prompts to answer are not optional
        DatasetReader.Result<SpinRecord> records = split.equals("test") ? SpinDatasets.load(inputDir, split, false)
                : SpinDatasets.loadNonEmpty(inputDir, split, false);
        List<Indexed<SpinRecord>> shuffled = DataSelection.shuffled(records.rows(),
                DataSelection.REFERENCE_SEED);
        List<Integer> fractions = new ArrayList<>();
        for (int k = numFracs == null ? dataFrac : 0; k < (numFracs == null ? dataFrac + 1 : numFracs); k++) {
            fractions.add(k);
        }
        List<Integer> todo = new ArrayList<>();
        for (int k : fractions) {
            List<Indexed<SpinRecord>> rows = DataSelection.fraction(shuffled, fracLen, k);
            Path file = shard(k);
            if (resume) {
                String problem = completeness(file, rows);
                if (problem == null) {
                    out.printf("%s: complete (%,d records), skipped%n", file, rows.size());
                    continue;
                }
                if (Files.exists(file)) {
                    out.printf("%s: %s; generating it again%n", file, problem);
                }
            }
            todo.add(k);
        }
        if (todo.isEmpty()) {
            return 0;
        }
        List<DeviceSpec> devices = world.localDevices();
        int cpuThreads = device.threadCount();
        if (devices.size() > 1) {
            // --threads is the whole process's CPU budget: CPU devices share the cores instead of each taking all of them
            int total = cpuThreads == 0 ? Runtime.getRuntime().availableProcessors() : cpuThreads;
            cpuThreads = Math.max(1, total / devices.size());
            out.printf("generating on %d devices: %s%s%n", devices.size(), devices.stream().map(DeviceSpec::toString)
                    .collect(java.util.stream.Collectors.joining(", ")), devices.stream().anyMatch(d -> d.kind() == DeviceSpec.Kind.CPU)
                    ? " (" + cpuThreads + " CPU thread" + (cpuThreads == 1 ? "" : "s") + " each)" : "");
        }
        try (Tokenizer tokenizer = Tokenizer.load(model);
                GenerationDevices group = GenerationDevices.open(devices, cpuThreads, device.precision(), model)) {
            GenerationOptions.requireCompatible(tokenizer, group.config(), model);
            for (int k : todo) {
                generate(k, DataSelection.fraction(shuffled, fracLen, k), tokenizer, group, out, err);
            }
        }
        return 0;
    }

    private Path shard(int fraction) {
        return outputDir.resolve(GenerationShards.fileName(fraction, split.equals("test")));
    }

    /**
     * Null when {@code file} holds exactly the shard of {@code rows} (every record, in order, with
     * its question and gold answer), else what is wrong with it.
     */
    private static String completeness(Path file, List<Indexed<SpinRecord>> rows) {
        if (!Files.isRegularFile(file)) {
            return "missing";
        }
        record Written(SpinRecord record, long sourceRow) {}
        List<Written> written;
        try {
            written = DatasetReader.read(List.of(file), row -> new Written(SpinRows.parse(row), GenerationShards.sourceIndex(row)),
                    false).values();
        } catch (IOException | IllegalArgumentException e) {
            return "unreadable (" + e.getMessage() + ")";
        }
        if (written.size() != rows.size()) {
            return "holds " + written.size() + " records, not " + rows.size();
        }
        for (int i = 0; i < rows.size(); i++) {
            Written w = written.get(i);
            if (!w.record().real().equals(GenerationRecords.withAnswer(rows.get(i).value(), "").real())
                    || w.sourceRow() >= 0 && w.sourceRow() != rows.get(i).index()) {
                return "record " + i + " is not the fraction's record " + i + " (another --frac-len or data?)";
            }
        }
        return null;
    }

    private void generate(int fraction, List<Indexed<SpinRecord>> rows, Tokenizer tokenizer, GenerationDevices group,
            PrintWriter out, PrintWriter err) throws IOException {
        PromptFormat format = options.format();
        ChatTemplate template = tokenizer.chatTemplate();
        List<GenerationRequest> requests = new ArrayList<>(rows.size());
        for (Indexed<SpinRecord> row : rows) {
            requests.add(new GenerationRequest(row.index(), options.promptTokens(tokenizer, format.render(row.value(), template))));
        }
        Path file = shard(fraction);
        GenerationProgress progress = new GenerationProgress(err, file.getFileName().toString(), requests.size(),
                System.console() != null);
        List<Generation> answers = group.generate(requests, options, progress);
        progress.finish();
        StopCriteria stop = options.stop(group.config(), tokenizer);
        List<SpinRecord> records = new ArrayList<>(rows.size());
        long[] sourceRows = new long[rows.size()];
        for (int i = 0; i < rows.size(); i++) {
            String answer = options.answerText(answers.get(i).tokens(), tokenizer, stop);
            records.add(GenerationRecords.withAnswer(rows.get(i).value(), answer));
            sourceRows[i] = rows.get(i).index();
        }
        GenerationShards.write(file, records, sourceRows);
        double seconds = progress.seconds();
        out.printf("%s: %,d answers, %,d prompt + %,d generated tokens in %s (%,.1f generated tokens/s); ended %s%n", file,
                records.size(), progress.promptTokens(), progress.generatedTokens(), GenerationProgress.duration(seconds),
                progress.generatedTokens() / seconds, progress.finishSummary());
        out.flush();
    }
}
