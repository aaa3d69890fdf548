package spin.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.backend.Backend;
import spin.data.DatasetReader;
import spin.data.LogProbScorer;
import spin.data.SequenceLimits;
import spin.data.SpinCollator;
import spin.data.SpinDatasets;
import spin.data.SpinFeatures;
import spin.data.SpinRecord;
import spin.data.TokenRow;
import spin.data.TruncationMode;
import spin.io.AtomicFiles;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.text.Tokenizer;

/**
 * {@code spin score}: log p(real answer | prompt) and log p(generated answer | prompt) of every record
 * under a model, tokenized exactly as training does. Run with the opponent model, these are the
 * numbers the SPIN loss keeps fixed for an iteration.
 */
@Command(name = "score", mixinStandardHelpOptions = true,
        description = "Sum the log-probs of each record's real and generated answers under a model (CPU). "
                + "Writes JSON lines {\"index\", \"real_logp\", \"generated_logp\"}.")
public final class ScoreCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = "HF model directory with config.json, weights and tokenizer files")
    private Path model;

    @Option(names = "--data", required = true, description = "SPIN records: a .parquet/.jsonl/.json file or a dataset directory")
    private Path data;

    @Option(names = "--split", defaultValue = "train", description = "split to read when --data is a directory (default ${DEFAULT-VALUE})")
    private String split;

    @Option(names = "--out", description = "JSON Lines output file (default: standard output)")
    private Path out;

    @Option(names = "--batch-size", defaultValue = "8", description = "records per forward pass (default ${DEFAULT-VALUE})")
    private int batchSize;

    @Option(names = "--max-length", defaultValue = "1024", description = "prompt + response tokens, as in training (default ${DEFAULT-VALUE})")
    private int maxLength;

    @Option(names = "--max-prompt-length", defaultValue = "512", description = "prompt tokens kept when too long (default ${DEFAULT-VALUE})")
    private int maxPromptLength;

    @Option(names = "--truncation-mode", defaultValue = "keep_end", description = "keep_end | keep_start (default ${DEFAULT-VALUE})")
    private String truncationMode;

    @Option(names = "--dump-tokens", description = "also write each record's input ids, attention masks and labels here (JSON Lines)")
    private Path dumpTokens;

    @Option(names = "--skip-invalid", description = "skip invalid rows and report how many")
    private boolean skipInvalid;

    @Mixin
    private DeviceOptions device;

    @Override
    public Integer call() throws Exception {
        if (batchSize <= 0) {
            throw new IllegalArgumentException("--batch-size must be positive, got " + batchSize);
        }
        SequenceLimits limits = new SequenceLimits(maxLength, maxPromptLength, TruncationMode.parse(truncationMode));
        DatasetReader.Result<SpinRecord> records = SpinDatasets.loadNonEmpty(data, split, skipInvalid);
        StringBuilder scores = new StringBuilder(), tokens = new StringBuilder();
        try (Tokenizer tokenizer = Tokenizer.load(model);
                Backend backend = device.open();
                MistralModel m = ModelCheckpoint.loadForInference(model, backend)) {
            GenerationOptions.requireCompatible(tokenizer, m.config(), model);
            SpinCollator collator = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(), limits);
            List<DatasetReader.Indexed<SpinRecord>> rows = records.rows();
            for (int start = 0; start < rows.size(); start += batchSize) {
                List<SpinFeatures> batch = new ArrayList<>();
                for (DatasetReader.Indexed<SpinRecord> row : rows.subList(start, Math.min(rows.size(), start + batchSize))) {
                    batch.add(collator.features(row.index(), row.value()));
                }
                LogProbScorer.Scores s = LogProbScorer.score(m, collator.collate(batch));
                requireFinite(s, batch);
                for (int b = 0; b < batch.size(); b++) {
                    ObjectNode line = JSON.createObjectNode().put("index", batch.get(b).index())
                            .put("real_logp", s.real()[b]).put("generated_logp", s.generated()[b]);
                    scores.append(JSON.writeValueAsString(line)).append('\n');
                    if (dumpTokens != null) {
                        tokens.append(JSON.writeValueAsString(tokensJson(batch.get(b)))).append('\n');
                    }
                }
            }
        }
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter report = out == null ? spec.commandLine().getErr() : stdout;
        if (out == null) {
            stdout.print(scores);
            stdout.flush();
        } else {
            AtomicFiles.writeString(out, scores.toString());
        }
        if (dumpTokens != null) {
            AtomicFiles.writeString(dumpTokens, tokens.toString());
        }
        int scored = records.rows().size();
        report.printf("Scored %,d record%s under %s%s%n", scored, scored == 1 ? "" : "s", model, out == null ? "" : " into " + out);
        Skips.report(report, records.skipped(), records.firstProblem());
        return 0;
    }

    /** A NaN or infinite log-prob means a broken model, not a score: refused before anything is written. */
    private void requireFinite(LogProbScorer.Scores s, List<SpinFeatures> batch) {
        for (int b = 0; b < batch.size(); b++) {
            for (float[] answers : new float[][] {s.real(), s.generated()}) {
                if (!Float.isFinite(answers[b])) {
                    throw new IllegalArgumentException(model + " gives record " + batch.get(b).index() + " (of " + data + ") a "
                            + (answers == s.real() ? "real" : "generated") + "-answer log-prob of " + answers[b]
                            + ": the model's weights are broken (NaN or Inf); score with a model that trained without diverging");
                }
            }
        }
    }

    private static ObjectNode tokensJson(SpinFeatures f) {
        ObjectNode node = JSON.createObjectNode().put("index", f.index()).put("prompt_length", f.promptLength());
        row(node.putObject("real"), f.real());
        row(node.putObject("generated"), f.generated());
        return node;
    }

    private static void row(ObjectNode node, TokenRow row) {
        for (int id : row.ids()) {
            node.withArray("input_ids").add(id);
        }
        for (int m : row.attentionMask()) {
            node.withArray("attention_mask").add(m);
        }
        for (int l : row.labels()) {
            node.withArray("labels").add(l);
        }
    }
}
