package spin.train;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.TreeMap;
import spin.backend.DeviceSpec;
import spin.backend.Precision;
import spin.backend.SpinLossType;
import spin.data.SequenceLimits;
import spin.data.TruncationMode;
import spin.optim.LearningRateSchedule;
import spin.optim.OptimizerSettings;

/**
 * A training run's settings: the reference's YAML keys (alignment-handbook ModelArguments /
 * DataArguments, HF TrainingArguments, SPIN's beta and loss_type) with local paths instead of hub
 * names, plus spin's own keys. Defaults are the reference's configs/config.yaml. An unknown key is
 * an error that names it and the closest known key; keys that only matter to the Python stack
 * (hub, logging, worker counts) are accepted and listed by {@link #ignoredKeys()}. A key given twice
 * in the file, a number that is not finite and a value torch or HF would refuse are errors too.
 */
public final class TrainConfig {
    private enum Kind { STRING, DOUBLE, INT, BOOL, FRACTIONS, STRINGS, OPTIONAL_INT }

    private record Key(Kind kind, Object defaultValue) {}

    private static final Map<String, Key> KEYS = new LinkedHashMap<>();
    private static final List<String> IGNORED = List.of("hub_model_id", "push_to_hub", "preprocessing_num_workers",
            "log_level", "torch_dtype", "report_to", "run_name", "overwrite_output_dir",
            "remove_unused_columns", "hub_strategy", "hub_private_repo", "use_flash_attention_2", "ddp_timeout");

    static {
        key("model_name_or_path", Kind.STRING, null);
        key("model_revision", Kind.STRING, null);
        key("dataset_mixer", Kind.FRACTIONS, null);
        key("dataset_splits", Kind.STRINGS, List.of("train", "test"));
        key("beta", Kind.DOUBLE, 0.1);
        key("loss_type", Kind.STRING, "sigmoid");
        key("learning_rate", Kind.DOUBLE, 5e-7);
        key("lr_scheduler_type", Kind.STRING, "linear");
        key("warmup_ratio", Kind.DOUBLE, 0.1);
        key("warmup_steps", Kind.INT, 0);
        key("optim", Kind.STRING, "rmsprop");
        key("weight_decay", Kind.DOUBLE, 0.0);
        key("adam_beta1", Kind.DOUBLE, 0.9);
        key("adam_beta2", Kind.DOUBLE, 0.999);
        key("adam_epsilon", Kind.DOUBLE, 1e-8);
        key("num_train_epochs", Kind.DOUBLE, 3.0);
        key("max_steps", Kind.INT, -1);
        key("per_device_train_batch_size", Kind.INT, 8);
        key("per_device_eval_batch_size", Kind.INT, 4);
        key("gradient_accumulation_steps", Kind.OPTIONAL_INT, null);
        key("global_batch_size", Kind.OPTIONAL_INT, null);
        key("max_length", Kind.INT, 1024);
        key("max_prompt_length", Kind.INT, 512);
        key("truncation_mode", Kind.STRING, "keep_end");
        key("max_grad_norm", Kind.DOUBLE, 1.0);
        key("gradient_checkpointing", Kind.BOOL, true);
        key("logprob_chunk_rows", Kind.OPTIONAL_INT, null);
        key("bf16", Kind.BOOL, true);
        key("seed", Kind.INT, 42);
        key("output_dir", Kind.STRING, "outputs");
        key("logging_steps", Kind.INT, 10);
        key("save_strategy", Kind.STRING, "epoch");
        key("save_steps", Kind.INT, 500);
        key("save_total_limit", Kind.OPTIONAL_INT, null);
        key("do_eval", Kind.BOOL, false);
        key("evaluation_strategy", Kind.STRING, "no");
        key("eval_strategy", Kind.STRING, null);
        key("eval_steps", Kind.INT, 100);
        key("precompute_opponent", Kind.BOOL, true);
        key("skip_invalid", Kind.BOOL, false);
        key("threads", Kind.INT, 0);
        key("device", Kind.STRING, "cpu");
        key("precision", Kind.STRING, null);
    }

    private static void key(String name, Kind kind, Object defaultValue) {
        KEYS.put(name, new Key(kind, defaultValue));
    }

    private final String source;
    private final Map<String, Object> values;
    private final List<String> ignored;

    private TrainConfig(String source, Map<String, Object> values, List<String> ignored) {
        this.source = source;
        this.values = values;
        this.ignored = ignored;
    }

    /** Reads a YAML file, then applies {@code --key=value} / {@code --key value} overrides in order. */
    public static TrainConfig load(Path yaml, List<String> overrides) throws IOException {
        if (!Files.isRegularFile(yaml)) {
            throw new NoSuchFileException(yaml.toString(), null, "the training config (YAML) was not found");
        }
        JsonNode root;
        try {
            requireUniqueKeys(yaml);
            root = new ObjectMapper(new YAMLFactory()).readTree(yaml.toFile());
        } catch (IOException e) {
            throw new IOException(yaml + ": not valid YAML: " + e.getMessage().lines().findFirst().orElse(""), e);
        }
        Map<String, JsonNode> raw = new LinkedHashMap<>();
        if (root != null && !root.isNull() && !root.isMissingNode()) {
            if (!root.isObject()) {
                throw new IllegalArgumentException(yaml + ": the top level must be a mapping of keys to values");
            }
            root.properties().forEach(e -> raw.put(e.getKey(), e.getValue()));
        }
        return build(yaml.toString(), raw, overrides);
    }

    /**
     * YAML lets a later key replace an earlier one of the same mapping without a word, so a key
     * edited in one place and forgotten in another would silently win or lose: refused, naming both lines.
     */
    private static void requireUniqueKeys(Path yaml) throws IOException {
        try (JsonParser parser = new YAMLFactory().createParser(yaml.toFile())) {
            Deque<Map<String, Integer>> mappings = new ArrayDeque<>();
            for (JsonToken t = parser.nextToken(); t != null; t = parser.nextToken()) {
                switch (t) {
                    case START_OBJECT -> mappings.push(new HashMap<>());
                    case END_OBJECT -> mappings.pop();
                    case FIELD_NAME -> {
                        String name = parser.currentName();
                        int line = parser.currentTokenLocation().getLineNr();
                        Integer first = mappings.peek().putIfAbsent(name, line);
                        if (first != null) {
                            String parent = parser.getParsingContext().getParent().getCurrentName();
                            throw new IllegalArgumentException(yaml + ": key \"" + name + "\"" + (parent == null ? "" : " of " + parent)
                                    + " is given twice (lines " + first + " and " + line + "); keep one of them");
                        }
                    }
                    default -> { }
                }
            }
        }
    }

    /** A config from key-value pairs instead of a file, for programmatic runs (iterate, the demo) and tests. */
    public static TrainConfig of(Map<String, ?> entries) {
        return of(entries, List.of());
    }

    /** Key-value pairs, then {@code --key=value} overrides. */
    public static TrainConfig of(Map<String, ?> entries, List<String> overrides) {
        ObjectMapper json = new ObjectMapper();
        Map<String, JsonNode> raw = new LinkedHashMap<>();
        entries.forEach((k, v) -> raw.put(k, json.valueToTree(v)));
        return build("settings", raw, overrides);
    }

    /** This config with some keys replaced. */
    public TrainConfig with(Map<String, ?> entries) {
        ObjectMapper json = new ObjectMapper();
        Map<String, JsonNode> raw = new LinkedHashMap<>();
        values.forEach((k, v) -> raw.put(k, json.valueToTree(v)));
        entries.forEach((k, v) -> raw.put(k, json.valueToTree(v)));
        return build(source, raw, List.of());
    }

    private static TrainConfig build(String source, Map<String, JsonNode> raw, List<String> overrides) {
        ObjectMapper yamlScalars = new ObjectMapper(new YAMLFactory());
        Map<String, JsonNode> merged = new LinkedHashMap<>(raw);
        for (int i = 0; i < overrides.size(); i++) {
            String arg = overrides.get(i);
            if (!arg.startsWith("--") || arg.length() == 2) {
                throw new IllegalArgumentException("override \"" + arg + "\" must look like --key=value or --key value");
            }
            String name, text;
            int eq = arg.indexOf('=');
            if (eq > 0) {
                name = arg.substring(2, eq);
                text = arg.substring(eq + 1);
            } else if (i + 1 < overrides.size()) {
                name = arg.substring(2);
                text = overrides.get(++i);
            } else {
                throw new IllegalArgumentException("override " + arg + " has no value; write " + arg + "=VALUE");
            }
            try {
                merged.put(name, yamlScalars.readTree(text.isEmpty() ? "''" : text));
            } catch (IOException e) {
                throw new IllegalArgumentException("override --" + name + ": cannot read value \"" + text + "\"");
            }
        }
        Map<String, Object> values = new LinkedHashMap<>();
        List<String> ignored = new ArrayList<>();
        for (Map.Entry<String, JsonNode> e : merged.entrySet()) {
            String name = e.getKey();
            if (IGNORED.contains(name)) {
                if (name.equals("push_to_hub") && e.getValue().asBoolean(false)) {
                    throw new IllegalArgumentException(source + ": push_to_hub: true is not supported (spin never uploads); set it to false");
                }
                ignored.add(name);
                continue;
            }
            Key key = KEYS.get(name);
            if (key == null) {
                throw new IllegalArgumentException(source + ": unknown key \"" + name + "\"" + suggestion(name)
                        + "; see README 'spin train' for the keys");
            }
            values.put(name, coerce(source, name, key.kind(), e.getValue()));
        }
        for (Map.Entry<String, Key> k : KEYS.entrySet()) {
            values.putIfAbsent(k.getKey(), k.getValue().defaultValue());
        }
        TrainConfig config = new TrainConfig(source, values, List.copyOf(ignored));
        config.validate(source);
        return config;
    }

    private static Object coerce(String source, String name, Kind kind, JsonNode v) {
        String where = source + ": " + name;
        if (v == null || v.isNull()) {
            if (kind == Kind.OPTIONAL_INT || name.equals("eval_strategy") || name.equals("model_revision")
                    || name.equals("precision")) {
                return null;
            }
            throw new IllegalArgumentException(where + " has no value");
        }
        switch (kind) {
            case STRING -> {
                if (!v.isValueNode()) {
                    throw new IllegalArgumentException(where + " must be a single value, got " + v);
                }
                // YAML 1.1 reads an unquoted no (save_strategy: no) as false; for these keys it means "no"
                return v.isBoolean() && !v.asBoolean() ? "no" : v.asText();
            }
            case DOUBLE -> {
                // YAML 1.1 reads 5e-7 (no dot) as a string: accept it as the number it plainly is
                double value;
                try {
                    value = v.isNumber() ? v.asDouble() : Double.parseDouble(v.asText().trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(where + " must be a number, got \"" + v.asText() + "\"");
                }
                if (!Double.isFinite(value)) {
                    throw new IllegalArgumentException(where + " must be a finite number, got \"" + v.asText() + "\"");
                }
                return value;
            }
            case INT, OPTIONAL_INT -> {
                try {
                    if (v.isIntegralNumber()) {
                        return Math.toIntExact(v.asLong());
                    }
                    return Integer.parseInt(v.asText().trim());
                } catch (NumberFormatException | ArithmeticException e) {
                    throw new IllegalArgumentException(where + " must be a whole number, got \"" + v.asText() + "\"");
                }
            }
            case BOOL -> {
                if (v.isBoolean()) {
                    return v.asBoolean();
                }
                String t = v.asText().trim().toLowerCase(Locale.ROOT);
                if (t.equals("true") || t.equals("false")) {
                    return Boolean.parseBoolean(t);
                }
                throw new IllegalArgumentException(where + " must be true or false, got \"" + v.asText() + "\"");
            }
            case STRINGS -> {
                List<String> out = new ArrayList<>();
                if (v.isArray()) {
                    v.forEach(x -> out.add(x.asText()));
                } else {
                    for (String part : v.asText().split(",")) {
                        out.add(part.trim());
                    }
                }
                return List.copyOf(out);
            }
            case FRACTIONS -> {
                if (!v.isObject()) {
                    throw new IllegalArgumentException(where + " must map dataset paths to fractions, e.g. {data/iter0: 1.0}");
                }
                Map<String, Double> out = new LinkedHashMap<>();
                v.properties().forEach(e -> out.put(e.getKey(),
                        (Double) coerce(source, name + "." + e.getKey(), Kind.DOUBLE, e.getValue())));
                return out;
            }
        }
        throw new AssertionError(kind);
    }

    private static String suggestion(String name) {
        String best = KEYS.keySet().stream().min(Comparator.comparingInt(k -> editDistance(k, name))).orElseThrow();
        return editDistance(best, name) <= Math.max(2, name.length() / 3) ? " (did you mean \"" + best + "\"?)" : "";
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    private void validate(String source) {
        if (values.get("model_name_or_path") == null) {
            throw new IllegalArgumentException(source + ": model_name_or_path is required (a local HF model directory)");
        }
        if (values.get("dataset_mixer") == null || datasetMixer().isEmpty()) {
            throw new IllegalArgumentException(source + ": dataset_mixer is required, e.g. dataset_mixer: {data/iter0: 1.0}");
        }
        // An empty path is the working directory, which no one means: output_dir "" would train into it.
        nonBlankPath(source, "model_name_or_path", (String) values.get("model_name_or_path"), "a local HF model directory");
        nonBlankPath(source, "output_dir", (String) values.get("output_dir"), "the directory for checkpoints and the final model");
        datasetMixer().keySet().forEach(path -> nonBlankPath(source, "dataset_mixer", path, "a dataset directory or file"));
        positive(source, "per_device_train_batch_size");
        positive(source, "per_device_eval_batch_size");
        positiveOrNull(source, "gradient_accumulation_steps");
        positiveOrNull(source, "global_batch_size");
        if (values.get("gradient_accumulation_steps") != null && values.get("global_batch_size") != null) {
            throw new IllegalArgumentException(source + ": give either global_batch_size or gradient_accumulation_steps, not both"
                    + " (global_batch_size sets the accumulation for the devices in use)");
        }
        positive(source, "logging_steps");
        positive(source, "save_steps");
        positive(source, "eval_steps");
        device();
        precision();
        if (threads() < 0) {
            throw new IllegalArgumentException(source + ": threads must be >= 0 (0 = every core), got " + threads());
        }
        if (!(beta() > 0)) {
            throw new IllegalArgumentException(source + ": beta must be > 0, got " + beta());
        }
        if (!(learningRate() >= 0)) {
            throw new IllegalArgumentException(source + ": learning_rate must be >= 0, got " + learningRate());
        }
        if (!(warmupRatio() >= 0 && warmupRatio() <= 1)) {
            throw new IllegalArgumentException(source + ": warmup_ratio must be in [0, 1], got " + warmupRatio());
        }
        if (!(numTrainEpochs() > 0) && maxSteps() <= 0) {
            throw new IllegalArgumentException(source + ": num_train_epochs must be > 0 (or set max_steps), got " + numTrainEpochs());
        }
        // every epoch is at least one step, and a run counts at most as many steps as max_steps can say
        if (numTrainEpochs() > Integer.MAX_VALUE && maxSteps() <= 0) {
            throw new IllegalArgumentException(source + ": num_train_epochs " + numTrainEpochs() + " would run for more than "
                    + Integer.MAX_VALUE + " steps (max_steps' limit); lower it or set max_steps");
        }
        if (values.get("logprob_chunk_rows") != null && (int) values.get("logprob_chunk_rows") < 0) {
            throw new IllegalArgumentException(source + ": logprob_chunk_rows must be >= 0 (0 = unfused: the whole [N, V] "
                    + "logits at once) or null (the model's default chunk), got " + values.get("logprob_chunk_rows"));
        }
        if (!(maxGradNorm() >= 0)) {
            throw new IllegalArgumentException(source + ": max_grad_norm must be >= 0 (0 = no clipping), got " + maxGradNorm());
        }
        oneOf(source, "loss_type", lossType(), "sigmoid", "hinge");
        oneOf(source, "save_strategy", saveStrategy(), "epoch", "steps", "no");
        oneOf(source, "evaluation_strategy", evaluationStrategy(), "no", "steps", "epoch");
        try {
            optimizer();
            schedule(1);
            limits();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
        }
        if (saveTotalLimit() != null && saveTotalLimit() < 1) {
            throw new IllegalArgumentException(source + ": save_total_limit must be >= 1 or null, got " + saveTotalLimit());
        }
    }

    private static void nonBlankPath(String source, String key, String path, String what) {
        if (path.isBlank()) {
            throw new IllegalArgumentException(source + ": " + key + " is an empty path; give " + what);
        }
    }

    private void positive(String source, String name) {
        if ((int) values.get(name) <= 0) {
            throw new IllegalArgumentException(source + ": " + name + " must be > 0, got " + values.get(name));
        }
    }

    private void positiveOrNull(String source, String name) {
        if (values.get(name) != null) {
            positive(source, name);
        }
    }

    private static void oneOf(String source, String name, String value, String... allowed) {
        if (!List.of(allowed).contains(value)) {
            throw new IllegalArgumentException(source + ": " + name + " must be one of " + String.join(", ", allowed)
                    + ", got \"" + value + "\"");
        }
    }

    // ---------------------------------------------------------------- typed views

    public Path modelPath() {
        return Path.of((String) values.get("model_name_or_path"));
    }

    @SuppressWarnings("unchecked")
    public Map<String, Double> datasetMixer() {
        return (Map<String, Double>) values.get("dataset_mixer");
    }

    @SuppressWarnings("unchecked")
    public List<String> datasetSplits() {
        return (List<String>) values.get("dataset_splits");
    }

    public double beta() {
        return (double) values.get("beta");
    }

    public String lossType() {
        return (String) values.get("loss_type");
    }

    public double learningRate() {
        return (double) values.get("learning_rate");
    }

    public double warmupRatio() {
        return (double) values.get("warmup_ratio");
    }

    public double numTrainEpochs() {
        return (double) values.get("num_train_epochs");
    }

    public int maxSteps() {
        return (int) values.get("max_steps");
    }

    public int trainBatchSize() {
        return (int) values.get("per_device_train_batch_size");
    }

    public int evalBatchSize() {
        return (int) values.get("per_device_eval_batch_size");
    }

    /**
     * Micro-batches per optimizer step on each of {@code dataParallelRanks} devices: from
     * global_batch_size when it is set (global = per_device_train_batch_size x ranks x accumulation,
     * refused when it does not divide), else gradient_accumulation_steps (default 1).
     */
    public int gradientAccumulationSteps(int dataParallelRanks) {
        Integer global = (Integer) values.get("global_batch_size");
        if (global == null) {
            Integer steps = (Integer) values.get("gradient_accumulation_steps");
            return steps == null ? 1 : steps;
        }
        long perStep = (long) trainBatchSize() * dataParallelRanks;
        if (global % perStep != 0) {
            throw new IllegalArgumentException("global_batch_size " + global + " is not a multiple of per_device_train_batch_size "
                    + trainBatchSize() + " x " + dataParallelRanks + " device" + (dataParallelRanks == 1 ? "" : "s") + " = "
                    + perStep + "; choose a global_batch_size that is, or another per_device_train_batch_size");
        }
        return Math.toIntExact(global / perStep);
    }

    /** The hub revision the config names (model_revision), which spin cannot fetch: it loads local directories. */
    public Optional<String> modelRevision() {
        return Optional.ofNullable((String) values.get("model_revision"));
    }

    public double maxGradNorm() {
        return (double) values.get("max_grad_norm");
    }

    public boolean gradientCheckpointing() {
        return (boolean) values.get("gradient_checkpointing");
    }

    /**
     * Rows per chunk of the fused lm_head + log-prob ({@link spin.model.MistralModel#setLogProbChunkRows});
     * 0 is unfused; empty (null, the default) leaves the model's default chunk.
     */
    public OptionalInt logprobChunkRows() {
        Integer rows = (Integer) values.get("logprob_chunk_rows");
        return rows == null ? OptionalInt.empty() : OptionalInt.of(rows);
    }

    /** bf16: true stores saved weights as bfloat16 (training itself keeps fp32 master weights). */
    public boolean bf16() {
        return (boolean) values.get("bf16");
    }

    public long seed() {
        return (int) values.get("seed");
    }

    public Path outputDir() {
        return Path.of((String) values.get("output_dir"));
    }

    public int loggingSteps() {
        return (int) values.get("logging_steps");
    }

    public String saveStrategy() {
        return (String) values.get("save_strategy");
    }

    public int saveSteps() {
        return (int) values.get("save_steps");
    }

    public Integer saveTotalLimit() {
        return (Integer) values.get("save_total_limit");
    }

    /** HF's rule: evaluation_strategy (or its newer name eval_strategy); do_eval alone means per eval_steps. */
    public String evaluationStrategy() {
        String s = values.get("eval_strategy") != null ? (String) values.get("eval_strategy")
                : (String) values.get("evaluation_strategy");
        return s.equals("no") && doEval() ? "steps" : s;
    }

    public boolean doEval() {
        return (boolean) values.get("do_eval");
    }

    public int evalSteps() {
        return (int) values.get("eval_steps");
    }

    public boolean precomputeOpponent() {
        return (boolean) values.get("precompute_opponent");
    }

    public boolean skipInvalid() {
        return (boolean) values.get("skip_invalid");
    }

    /** Where training runs (the device key, or --device). */
    public DeviceSpec device() {
        return DeviceSpec.parse((String) values.get("device"));
    }

    /**
     * The compute dtype (the precision key, or --precision): auto, fp32 or bf16. Unset, it follows
     * HF's bf16 flag: {@code bf16: true} (the default) computes in the device's own dtype (bf16 on
     * a GPU, fp32 on the CPU), {@code bf16: false} in fp32.
     */
    public Precision precision() {
        String text = (String) values.get("precision");
        return text != null ? Precision.parse(text) : bf16() ? Precision.AUTO : Precision.FP32;
    }

    /** CPU threads; 0 means every core. */
    public int threads() {
        return (int) values.get("threads");
    }

    public SequenceLimits limits() {
        return new SequenceLimits((int) values.get("max_length"), (int) values.get("max_prompt_length"),
                TruncationMode.parse((String) values.get("truncation_mode")));
    }

    public SpinLossType spinLossType() {
        return lossType().equals("hinge") ? SpinLossType.HINGE : SpinLossType.SIGMOID;
    }

    public OptimizerSettings optimizer() {
        String name = (String) values.get("optim");
        String normalized = name.equals("adamw_torch") || name.equals("adamw_hf") || name.equals("adamw_torch_fused")
                ? "adamw" : name;
        return new OptimizerSettings(normalized, (float) (double) values.get("weight_decay"),
                (float) (double) values.get("adam_beta1"), (float) (double) values.get("adam_beta2"),
                (float) (double) values.get("adam_epsilon"));
    }

    public LearningRateSchedule schedule(long totalSteps) {
        long warmup = LearningRateSchedule.warmupSteps((int) values.get("warmup_steps"), warmupRatio(), totalSteps);
        return new LearningRateSchedule((String) values.get("lr_scheduler_type"), learningRate(), warmup, totalSteps);
    }

    /** Where the settings came from (the YAML file, or "settings"), for messages about them. */
    public String source() {
        return source;
    }

    /** Keys present in the file that spin accepts but does not use (hub, logging and worker settings). */
    public List<String> ignoredKeys() {
        return ignored;
    }

    /** Every key with its value, sorted: saved beside checkpoints so a resume can check it runs the same job. */
    public Map<String, Object> asMap() {
        return new TreeMap<>(values);
    }
}
