package spin.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.data.DatasetReader;
import spin.data.SpinDatasetWriter;
import spin.data.SpinRecord;
import spin.data.SpinRows;
import spin.demo.DemoTask;
import spin.io.AtomicFiles;
import spin.model.MistralConfig;
import spin.model.ModelCheckpoint;
import spin.text.DemoTokenizer;
import spin.train.TrainConfig;
import spin.train.Trainer;

/**
 * {@code spin demo}: SPIN end to end on the CPU in a few minutes. A tiny random model and the demo
 * tokenizer learn a synthetic task with exact answers: a short supervised warm-up leaves the model
 * weak, then SPIN iterations (generate, convert, train against the previous model) improve it on
 * held-out problems, measured by greedy exact match and the mean log-prob of the real answers.
 * Every stage keeps its output under --work, and re-running resumes.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Run SPIN end to end on a tiny model and a synthetic task with exact answers, printing held-out "
                + "exact match and mean log-prob of the real answers for the SFT model and every SPIN iteration, and writing "
                + "WORK/evaluation.jsonl and the report WORK/report/report.html."})
public final class DemoCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_NEW_TOKENS = 16;

    @Spec
    private CommandSpec spec;

    @Option(names = "--work", defaultValue = "demo", description = "working directory (default ${DEFAULT-VALUE})")
    private Path work;

    @Option(names = "--seed", defaultValue = "42", description = "seed of the model, the data and the training order (default ${DEFAULT-VALUE})")
    private long seed;

    @Option(names = "--train-records", defaultValue = "400", description = "training problems (default ${DEFAULT-VALUE})")
    private int trainRecords;

    @Option(names = "--test-records", defaultValue = "80", description = "held-out problems (default ${DEFAULT-VALUE})")
    private int testRecords;

    @Option(names = "--hidden-size", defaultValue = "64", description = "model width (default ${DEFAULT-VALUE})")
    private int hiddenSize;

    @Option(names = "--layers", defaultValue = "2", description = "transformer layers (default ${DEFAULT-VALUE})")
    private int layers;

    @Option(names = "--tasks", defaultValue = "opposite", split = ",",
            description = "problem kinds: opposite, reverse, next, sort, add (default ${DEFAULT-VALUE})")
    private List<String> tasks;

    @Option(names = "--iterations", defaultValue = "2", description = "SPIN iterations after the warm-up (default ${DEFAULT-VALUE})")
    private int iterations;

    @Option(names = "--sft-epochs", defaultValue = "10", description = "epochs of the supervised warm-up: too few to learn the task well (default ${DEFAULT-VALUE})")
    private double sftEpochs;

    @Option(names = "--sft-learning-rate", defaultValue = "3e-3", description = "AdamW learning rate of the warm-up (default ${DEFAULT-VALUE})")
    private double sftLearningRate;

    @Option(names = "--spin-epochs", defaultValue = "1", description = "epochs per SPIN iteration (default ${DEFAULT-VALUE})")
    private double spinEpochs;

    @Option(names = "--spin-learning-rate", defaultValue = "1e-5", description = "learning rate of the SPIN iterations (default ${DEFAULT-VALUE})")
    private double spinLearningRate;

    @Option(names = "--spin-optim", defaultValue = "rmsprop", description = "optimizer of the SPIN iterations: rmsprop (the reference's) or adamw (default ${DEFAULT-VALUE})")
    private String spinOptim;

    @Option(names = "--beta", defaultValue = "0.1", description = "SPIN's beta (default ${DEFAULT-VALUE})")
    private double beta;

    @Mixin
    private DeviceOptions device;

    /** One model's held-out scores. */
    record Evaluation(String model, double exactMatch, double meanLogpReal, int examples) {}

    @Override
    public Integer call() throws Exception {
        if (trainRecords < 16 || testRecords < 1 || iterations < 1) {
            throw new IllegalArgumentException("the demo needs --train-records >= 16, --test-records >= 1 and --iterations >= 1");
        }
        PrintWriter err = spec.commandLine().getErr();
        Subcommands stages = new Subcommands(spec.commandLine());
        long start = System.nanoTime();
        Path base = work.resolve("base"), data = work.resolve("data");
        prepare(base, data, err);

        List<Evaluation> results = new ArrayList<>();
        Path sft = work.resolve("sft");
        err.printf("== supervised warm-up (%s epochs): a weak starting model%n", sftEpochs);
        Map<String, Object> warmUp = new LinkedHashMap<>(common(sftLearningRate, sftEpochs, "adamw"));
        warmUp.put("model_name_or_path", base.toString());
        warmUp.put("dataset_mixer", Map.of(data.toString(), 1.0));
        warmUp.put("output_dir", sft.toString());
        warmUp.put("device", device.spec().toString());
        warmUp.put("threads", device.threadCount());
        Trainer.run(TrainConfig.of(warmUp), Trainer.Mode.SFT, true, err);
        results.add(evaluate("sft", sft, data, stages, err));
        Path model = sft;
        for (int k = 0; k < iterations; k++) {
            List<String> args = new ArrayList<>(List.of("iterate", "--iteration", Integer.toString(k), "--model", model.toString(),
                    "--data", data.toString(), "--work", work.toString(), "--prompt-format", "chat", "--max-new-tokens",
                    Integer.toString(MAX_NEW_TOKENS), "--generate-batch-size", "32"));
            args.addAll(device.arguments());
            common(spinLearningRate, spinEpochs, spinOptim).forEach((key, value) -> args.add("--" + key + "=" + value));
            args.add("--beta=" + beta);
            stages.run(args.toArray(String[]::new));
            model = work.resolve("iter" + k).resolve("train");
            results.add(evaluate("iter" + k, model, data, stages, err));
        }
        StringBuilder lines = new StringBuilder();
        for (Evaluation e : results) {
            lines.append(JSON.writeValueAsString(Map.of("model", e.model(), "exact_match", e.exactMatch(), "mean_logp_real",
                    e.meanLogpReal(), "examples", e.examples()))).append('\n');
        }
        AtomicFiles.writeString(work.resolve("evaluation.jsonl"), lines.toString());
        err.println("== report");
        stages.run("report", "--work", work.toString());
        PrintWriter out = spec.commandLine().getOut();
        out.printf("%nHeld-out results (%d problems; greedy decoding):%n", testRecords);
        out.printf("| model | exact match | mean log p(real answer) |%n|---|---|---|%n");
        for (Evaluation e : results) {
            out.printf("| %s | %.1f%% | %.3f |%n", e.model(), 100 * e.exactMatch(), e.meanLogpReal());
        }
        out.printf("%nfinished in %.0f s; everything is under %s%n", (System.nanoTime() - start) / 1e9, work);
        out.flush();
        return 0;
    }

    /** The tiny model with the demo tokenizer, and the task's train and test records; kept if already there. */
    private void prepare(Path base, Path data, PrintWriter err) throws IOException {
        if (!Files.exists(base.resolve(MistralConfig.FILE_NAME))) {
            err.printf("== a tiny random model and the demo tokenizer in %s%n", base);
            MistralConfig tiny = MistralConfig.tiny();
            MistralConfig config = new MistralConfig(tiny.vocabSize(), hiddenSize, 2 * hiddenSize, layers, 4, 2, hiddenSize / 4,
                    tiny.maxPositionEmbeddings(), tiny.rmsNormEps(), tiny.ropeTheta(), tiny.slidingWindow(), false,
                    tiny.initializerRange(), tiny.bosTokenId(), tiny.eosTokenId());
            DemoTokenizer.write(base, DemoTokenizer.DEFAULT_VOCAB_SIZE, config.maxPositionEmbeddings());
            ModelCheckpoint.writeInitialized(config, base, ModelCheckpoint.StorageType.F32, seed, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        }
        Path trainFile = data.resolve(SpinDatasetWriter.TRAIN_FILE), testFile = data.resolve(SpinDatasetWriter.TEST_FILE);
        if (!Files.exists(trainFile) || !Files.exists(testFile)) {
            err.printf("== %d train and %d held-out problems in %s%n", trainRecords, testRecords, data);
            List<DemoTask.Kind> kinds = tasks.stream().map(DemoTask.Kind::parse).toList();
            List<SpinRecord> test = DemoTask.records(kinds, testRecords, seed + 1, Set.of());
            HashSet<String> held = new HashSet<>();
            test.forEach(r -> held.add(DemoTask.question(r)));
            SpinDatasetWriter.write(testFile, test);
            SpinDatasetWriter.write(trainFile, DemoTask.records(kinds, trainRecords, seed, held));
        }
    }

    /** Training keys shared by the warm-up and the SPIN iterations (iterate sets threads itself), sized for a tiny model on a CPU. */
    private Map<String, Object> common(double lr, double epochs, String optim) {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("learning_rate", lr);
        s.put("num_train_epochs", epochs);
        s.put("optim", optim);
        s.put("per_device_train_batch_size", 8);
        s.put("max_length", 96);
        s.put("max_prompt_length", 64);
        s.put("logging_steps", 10);
        s.put("save_strategy", "no");
        s.put("evaluation_strategy", "epoch"); // eval_* curves in the report, on the held-out problems
        s.put("per_device_eval_batch_size", 16);
        s.put("bf16", false);
        s.put("seed", seed);
        return s;
    }

    private Evaluation evaluate(String name, Path model, Path data, Subcommands stages, PrintWriter err) throws IOException {
        Path dir = work.resolve("eval").resolve(name);
        err.printf("== held-out evaluation of %s%n", name);
        List<String> generate = new ArrayList<>(List.of("generate", "--model", model.toString(), "--input-dir", data.toString(),
                "--output-dir", dir.toString(), "--split", "test", "--resume", "--prompt-format", "chat", "--max-new-tokens",
                Integer.toString(MAX_NEW_TOKENS), "--batch-size", "32"));
        List<String> score = new ArrayList<>(List.of("score", "--model", model.toString(), "--data", data.toString(), "--split",
                "test", "--out", dir.resolve("scores.jsonl").toString(), "--max-length", "96", "--max-prompt-length", "64"));
        generate.addAll(device.arguments());
        score.addAll(device.arguments());
        stages.run(generate.toArray(String[]::new));
        stages.run(score.toArray(String[]::new));
        List<SpinRecord> answered = DatasetReader.read(List.of(dir.resolve("loser_0_test.jsonl")), SpinRows::parse, false).values();
        int right = 0;
        for (SpinRecord r : answered) {
            right += r.generated().get(1).content().strip().equals(r.real().get(1).content().strip()) ? 1 : 0;
        }
        double logpSum = 0;
        List<String> lines = Files.readAllLines(dir.resolve("scores.jsonl"));
        for (String line : lines) {
            JsonNode node = JSON.readTree(line);
            logpSum += node.get("real_logp").asDouble();
        }
        Evaluation e = new Evaluation(name, (double) right / answered.size(), logpSum / lines.size(), answered.size());
        err.printf("%s: exact match %.1f%%, mean log p(real answer) %.3f%n", name, 100 * e.exactMatch(), e.meanLogpReal());
        return e;
    }
}
