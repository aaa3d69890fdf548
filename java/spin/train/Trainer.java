package spin.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.Devices;
import spin.backend.Tensor;
import spin.data.DatasetMixer;
import spin.data.NumpyPermutation;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.data.SpinRecord;
import spin.dist.Communicator;
import spin.dist.CommunicatorException;
import spin.dist.RankGroup;
import spin.dist.World;
import spin.io.AtomicFiles;
import spin.io.OutputLock;
import spin.model.HubRevision;
import spin.model.MemoryPlan;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.optim.LearningRateSchedule;
import spin.optim.Optimizer;
import spin.text.Tokenizer;

/**
 * The training loop of HF Trainer as the reference runs it, for SPIN or supervised fine-tuning:
 * epochs over a seeded shuffle of the mixed train split, micro-batches of
 * per_device_train_batch_size accumulated over gradient_accumulation_steps into one optimizer step,
 * clipping by global norm, the learning-rate schedule, logging, evaluation and checkpoints.
 *
 * <p>Everything that decides the trajectory (weights, optimizer state, the step, the data order,
 * which is a function of seed, epoch and step, and the metric accumulators) is in a checkpoint, so a
 * resumed run ends bit-identical to an uninterrupted one.
 */
public final class Trainer {
    public enum Mode { SPIN, SFT }

    /** Marks a finished run in its output directory; written last. */
    public static final String RESULTS_FILE = "train_results.json";

    /** Keys that change what a run computes: a resume must not change them. */
    private static final List<String> TRAJECTORY_KEYS = List.of("model_name_or_path", "dataset_mixer", "dataset_splits",
            "beta", "loss_type", "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "optim",
            "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "num_train_epochs", "max_steps",
            "per_device_train_batch_size", "max_length", "max_prompt_length",
            "truncation_mode", "max_grad_norm", "seed", "logprob_chunk_rows");
    /** The trajectory's batch: records per optimizer step over all devices (global_batch_size or its parts). */
    private static final String RECORDS_PER_STEP = "records_per_step";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BAR_WIDTH = 20;

    /** The run's final metrics: the last training log line and the last evaluation, if any. */
    public record Result(long steps, Path outputDir, Map<String, Double> lastLog, Map<String, Double> lastEval) {}

    private final TrainConfig config;
    private final Mode mode;
    private final PrintWriter console;
    /** Data-parallel ranks in the whole group (every process): 1 unless sharded. */
    private final int worldSize;

    private Trainer(TrainConfig config, Mode mode, PrintWriter console, int worldSize) {
        this.config = config;
        this.mode = mode;
        this.console = console;
        this.worldSize = worldSize;
    }

    /**
     * Trains as {@code config} says. With {@code resume}, continues from the latest complete
     * checkpoint in output_dir (or starts, if there is none; or returns at once if the run already
     * finished); without it, refuses an output_dir that already holds a run.
     */
    public static Result run(TrainConfig config, Mode mode, boolean resume, PrintWriter console) throws IOException {
        return new Trainer(config, mode, console, 1).run(resume, null);
    }

    /**
     * Trains data-parallel with ZeRO-3 over {@code ranks}' group: this process's ranks, one
     * thread each (each communicator on its own backend, which the caller owns), the group's
     * other ranks in other processes doing the same. Every rank reads its slice of each global
     * batch ({@link #stepBatches}); rank 0's process prints, logs and writes the model, every rank
     * writes its shard of the checkpoints. A rank that fails stops the group: the first failure is
     * thrown here, on every process.
     *
     * @return rank 0's result where this process holds rank 0, else this process's first rank's
     */
    public static Result run(TrainConfig config, Mode mode, boolean resume, List<? extends Communicator> ranks,
            PrintWriter console) throws IOException {
        if (ranks.isEmpty()) {
            throw new IllegalArgumentException("no ranks to train on");
        }
        return new Trainer(config, mode, console, ranks.getFirst().worldSize()).run(resume, ranks);
    }

    /**
     * Trains as {@code config} says on the devices of {@code world}, this process's ranks of it.
     * The launch commands (train, sft, iterate) come through here. A world of one rank trains one
     * device without ZeRO ({@link #run(TrainConfig, Mode, boolean, PrintWriter)}, on config's
     * device); a larger one opens this process's devices and trains ZeRO-3 over them
     * ({@link RankGroup}, then {@link #run(TrainConfig, Mode, boolean, List, PrintWriter)}).
     */
    public static Result run(TrainConfig config, Mode mode, boolean resume, World world, PrintWriter console)
            throws IOException {
        if (world.worldSize() == 1) {
            return run(config, mode, resume, console);
        }
        console.printf("ZeRO-3 over %s%n", world.describe());
        try (RankGroup group = RankGroup.open(world, config.threads(), config.precision())) {
            return run(config, mode, resume, group.communicators(), console);
        }
    }

    /**
     * Checks model_revision, then locks output_dir (which also proves it writable), so a second run
     * on the same directory and an unwritable one are refused before anything is loaded. Of a
     * group's processes only the one holding rank 0 locks and tidies output_dir (the others share
     * it on a shared filesystem, or write their shards into their own copy of it).
     */
    private Result run(boolean resume, List<? extends Communicator> ranks) throws IOException {
        Path out = config.outputDir();
        if (config.modelRevision().isPresent()) {
            console.println(HubRevision.check(config.modelPath(), config.modelRevision().get()));
        }
        boolean leaderProcess = ranks == null || ranks.stream().anyMatch(c -> c.rank() == 0);
        if (!leaderProcess) {
            return runLocked(resume, ranks, false);
        }
        try (OutputLock lock = OutputLock.acquire(out, "output_dir", mode == Mode.SPIN ? "spin train" : "spin sft")) {
            return runLocked(resume, ranks, true);
        }
    }

    private Result runLocked(boolean resume, List<? extends Communicator> ranks, boolean leaderProcess) throws IOException {
        Path out = config.outputDir();
        TrainingCheckpoints checkpoints = new TrainingCheckpoints(out);
        if (Files.exists(out.resolve(RESULTS_FILE))) {
            if (!resume) {
                throw new IllegalArgumentException(out + " already holds a finished run (" + RESULTS_FILE
                        + "); choose another output_dir, or pass --resume to accept it as done");
            }
            console.printf("%s: training already finished (%s); nothing to do%n", out, RESULTS_FILE);
            JsonNode done = JSON.readTree(out.resolve(RESULTS_FILE).toFile());
            return new Result(done.path("global_step").asLong(), out, Map.of(), Map.of());
        }
        Optional<Path> from = resume ? checkpoints.latest() : Optional.empty();
        if (!resume && !checkpoints.list().isEmpty()) {
            throw new IllegalArgumentException(out + " already holds checkpoints (" + checkpoints.latest().orElseThrow().getFileName()
                    + "); pass --resume to continue from the latest, or choose another output_dir");
        }
        // Read before anything is loaded, so a damaged or foreign checkpoint is refused at once.
        JsonNode resumedState = null;
        if (from.isPresent()) {
            resumedState = TrainingCheckpoints.readState(from.get());
            requireSameTrajectory(from.get(), resumedState.path("config"));
        }
        boolean evaluating = !config.evaluationStrategy().equals("no");
        if (evaluating) {
            requireSeparateTestSplit();
        }
        List<Path> swept = leaderProcess ? checkpoints.sweep() : List.of();
        if (!swept.isEmpty()) {
            console.printf("removed %d leftover%s of an interrupted run from %s: %s%n", swept.size(), swept.size() == 1 ? "" : "s",
                    out, String.join(", ", swept.stream().map(p -> p.getFileName().toString()).toList()));
        }
        if (leaderProcess && from.isPresent() && config.saveTotalLimit() != null) {
            checkpoints.rotate(config.saveTotalLimit(), TrainingCheckpoints.step(from.get()));
        }
        if (!config.ignoredKeys().isEmpty()) {
            console.println("note: ignoring keys that only matter to the Python stack: " + String.join(", ", config.ignoredKeys()));
        }
        List<DatasetMixer.Source> sources = new ArrayList<>();
        config.datasetMixer().forEach((path, fraction) -> sources.add(new DatasetMixer.Source(Path.of(path), fraction)));
        DatasetMixer.Mixed data = DatasetMixer.mix(sources, config.datasetSplits(), OptionalLong.of(config.seed()), config.skipInvalid());
        if (data.train().isEmpty()) {
            throw new IllegalArgumentException("dataset_mixer " + config.datasetMixer() + " gives no training records for splits "
                    + config.datasetSplits());
        }
        if (evaluating && data.test().isEmpty()) {
            throw new IllegalArgumentException("evaluation is on (evaluation_strategy " + config.evaluationStrategy()
                    + ") but dataset_splits " + config.datasetSplits() + " gives no test records; add a test split or set do_eval: false");
        }
        StepPlan plan = StepPlan.of(config, data.train().size(), worldSize);
        RunInputs inputs = new RunInputs(data, checkpoints, from, resumedState, plan);
        if (ranks == null) {
            try (Backend backend = Devices.open(config.device(), config.threads(), config.precision())) {
                Result result = trainRank(backend, null, console, inputs);
                logPeakMemory(backend, 0);
                return result;
            }
        }
        return trainRanks(ranks, inputs);
    }

    /** What every rank of a run shares, read once per process before the ranks start. */
    private record RunInputs(DatasetMixer.Mixed data, TrainingCheckpoints checkpoints, Optional<Path> from,
            JsonNode resumedState, StepPlan plan) {}

    /**
     * Runs each local rank on a thread of its own and waits for all: a rank that fails aborts the
     * group (so the others' collectives throw rather than wait), and the failure thrown is the
     * first rank's own error rather than a peer's report of it.
     */
    private Result trainRanks(List<? extends Communicator> ranks, RunInputs inputs) throws IOException {
        List<Thread> threads = new ArrayList<>();
        Result[] results = new Result[ranks.size()];
        Throwable[] failures = new Throwable[ranks.size()];
        for (int i = 0; i < ranks.size(); i++) {
            int local = i;
            Communicator comm = ranks.get(i);
            PrintWriter rankConsole = comm.rank() == 0 ? console : new PrintWriter(Writer.nullWriter());
            threads.add(Thread.ofPlatform().name("spin-rank-" + comm.rank()).start(() -> {
                try {
                    results[local] = trainRank(comm.backend(), comm, rankConsole, inputs);
                } catch (Throwable t) {
                    failures[local] = t;
                    comm.abort(t);
                }
            }));
        }
        try {
            for (Thread t : threads) {
                t.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            ranks.getFirst().abort(e);
            throw new IllegalStateException("interrupted while the ranks trained", e);
        } finally {
            console.flush();
        }
        Throwable first = rootFailure(failures);
        if (first instanceof IOException io) {
            throw io;
        }
        if (first instanceof RuntimeException r) {
            throw r;
        }
        if (first instanceof Error e) {
            throw e;
        }
        if (first != null) {
            throw new IllegalStateException(first);
        }
        ranks.forEach(comm -> logPeakMemory(comm.backend(), comm.rank()));
        for (int i = 0; i < ranks.size(); i++) {
            if (ranks.get(i).rank() == 0) {
                return results[i];
            }
        }
        return results[0];
    }

    /**
     * Prints a rank's device pool peak (since its backend opened or last reset its peak; ranks
     * placed on one device share its pool), where the backend counts one: what
     * {@link MemoryPlan#poolBytesPerGpu()} predicts.
     */
    private void logPeakMemory(Backend backend, int rank) {
        backend.memoryUsage().ifPresent(usage -> console.printf("peak device memory: %s (rank %d)%n",
                MemoryPlan.human(usage.peakBytes()), rank));
    }

    /**
     * The failure to report: a rank's own error before a peer's report that the group stopped
     * (whose cause is the failed rank's error, possibly from another process).
     */
    private static Throwable rootFailure(Throwable[] failures) {
        for (Throwable t : failures) {
            if (t != null && !(t instanceof CommunicatorException)) {
                return t;
            }
        }
        for (Throwable t : failures) {
            if (t != null) {
                return t.getCause() != null && !(t.getCause() instanceof CommunicatorException) ? t.getCause() : t;
            }
        }
        return null;
    }

    /**
     * One rank's whole run (or the only device's, when {@code comm} is null): the model, the
     * opponent, the optimizer and the loop, on {@code backend}.
     */
    private Result trainRank(Backend backend, Communicator comm, PrintWriter console, RunInputs inputs) throws IOException {
        DatasetMixer.Mixed data = inputs.data();
        Optional<Path> from = inputs.from();
        try (Tokenizer tokenizer = Tokenizer.load(config.modelPath());
                MistralModel model = loadPolicy(from, backend, comm)) {
            if (tokenizer.vocabSize() > model.config().vocabSize()) {
                throw new IllegalArgumentException(config.modelPath() + ": the tokenizer has " + tokenizer.vocabSize()
                        + " tokens but config.json's vocab_size is " + model.config().vocabSize());
            }
            model.setActivationRecompute(config.gradientCheckpointing());
            withLogProbChunking(model);
            requireMemoryForTraining(model, backend, mode, data.train().size());
            SpinCollator collator = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(), config.limits());
            try (Opponent opponent = mode == Mode.SPIN ? opponent(model, from.isPresent(), collator, data, backend, comm, console)
                    : null;
                    Optimizer optimizer = config.optimizer().create(model)) {
                TrainingObjective objective = mode == Mode.SPIN
                        ? new SpinObjective(model, collator, opponent, (float) config.beta(), config.spinLossType())
                        : new SftObjective(model, collator);
                try (Loop loop = new Loop(model, optimizer, objective, collator, data, inputs.checkpoints(), from,
                        inputs.resumedState(), inputs.plan(), comm, console)) {
                    return loop.run();
                }
            }
        }
    }

    /** The model to train: the checkpoint's (resuming) or model_name_or_path's, whole or this rank's shard. */
    private MistralModel loadPolicy(Optional<Path> from, Backend backend, Communicator comm) throws IOException {
        if (comm == null) {
            return from.isPresent() ? TrainingCheckpoints.loadModel(from.get(), backend) : ModelCheckpoint.load(config.modelPath(), backend);
        }
        return from.isPresent() ? TrainingCheckpoints.loadShardedModel(from.get(), comm)
                : ModelCheckpoint.loadSharded(config.modelPath(), comm);
    }

    /** The opponent's starting weights again (a resume, or a frozen opponent): whole, or this rank's shard. */
    private MistralModel loadStartingModel(Backend backend, Communicator comm) throws IOException {
        return withLogProbChunking(comm == null ? ModelCheckpoint.load(config.modelPath(), backend)
                : ModelCheckpoint.loadSharded(config.modelPath(), comm));
    }

    /**
     * Refuses, before the gradients and optimizer state are allocated, a run whose fp32 training
     * state and activations (spin inspect --memory's plan) exceed the device's memory, naming the
     * keys that lower it, rather than failing in an allocation midway.
     */
    private void requireMemoryForTraining(MistralModel model, Backend backend, Mode mode, int trainRecords) {
        // A micro-batch holds at most the records there are; SPIN's holds each record's real and
        // generated sequence.
        int sequences = Math.min(config.trainBatchSize(), trainRecords) * (mode == Mode.SPIN ? 2 : 1);
        MemoryPlan plan = new MemoryPlan(model.config(), sequences, config.limits().maxLength(), worldSize,
                config.gradientCheckpointing(), config.optimizer().stateTensors(), model.logProbChunkRows(), model.computeType(),
                model.isSharded());
        // A frozen opponent (precompute_ref_log_probs: false) is a second copy of the weights.
        long opponent = mode == Mode.SPIN && !config.precomputeOpponent()
                ? plan.parameterCount() * Float.BYTES + plan.computeWeightBytes() : 0;
        long needed = plan.totalBytesPerGpu() + opponent;
        if (needed > backend.memoryBytes()) {
            throw new IllegalArgumentException(String.format("%s: training needs about %s (weights, gradients, %d "
                    + "optimizer state tensor(s)%s and activations of %d sequences of %d tokens) but %s has %s; lower "
                    + "per_device_train_batch_size or max_length, or set gradient_checkpointing: true (spin inspect --memory "
                    + "shows the plan)", config.source(), MemoryPlan.human(needed), config.optimizer().stateTensors(),
                    opponent > 0 ? ", the frozen opponent" : "", sequences, config.limits().maxLength(), backend.name(),
                    MemoryPlan.human(backend.memoryBytes())));
        }
    }

    private Opponent opponent(MistralModel model, boolean resumed, SpinCollator collator, DatasetMixer.Mixed data,
            Backend backend, Communicator comm, PrintWriter console) throws IOException {
        if (!config.precomputeOpponent()) {
            return new FrozenOpponent(loadStartingModel(backend, comm));
        }
        int records = data.train().size() + data.test().size();
        console.printf("scoring %,d records with the opponent (%s)...%n", records, config.modelPath());
        long start = System.nanoTime();
        int batch = config.trainBatchSize();
        PrecomputedOpponent scores;
        if (resumed) {
            try (MistralModel starting = loadStartingModel(backend, comm)) {
                starting.setActivationRecompute(true);
                scores = PrecomputedOpponent.score(starting, collator, data.train(), data.test(), batch, comm);
            }
        } else {
            scores = PrecomputedOpponent.score(model, collator, data.train(), data.test(), batch, comm);
        }
        console.printf("opponent log-probs ready in %.1f s%n", (System.nanoTime() - start) / 1e9);
        return scores;
    }

    /**
     * {@code model} chunking its lm_head + log-prob as logprob_chunk_rows says: every model of a run
     * (policy, opponent) alike, so that a resume rescoring the opponent gets the same bits.
     */
    private MistralModel withLogProbChunking(MistralModel model) {
        config.logprobChunkRows().ifPresent(model::setLogProbChunkRows);
        return model;
    }

    /**
     * A dataset given as one file is every split at once (HF's load_dataset does the same), so an
     * evaluation would score the records it trains on: refused rather than reported as held-out.
     */
    private void requireSeparateTestSplit() {
        for (String path : config.datasetMixer().keySet()) {
            if (Files.isRegularFile(Path.of(path))) {
                throw new IllegalArgumentException(config.source() + ": dataset_mixer: " + path + " is a single file, so it is "
                        + "both the train and the test split and evaluation (do_eval / evaluation_strategy " + config.evaluationStrategy()
                        + ") would score training records; give a dataset directory with train and test files "
                        + "(train_prefs-*.parquet and test_prefs-*.parquet, as convert writes them), or set do_eval: false");
            }
        }
    }

    private ObjectNode trajectory() {
        ObjectNode node = JSON.createObjectNode();
        Map<String, Object> all = config.asMap();
        for (String key : TRAJECTORY_KEYS) {
            node.set(key, JSON.valueToTree(all.get(key)));
        }
        node.put(RECORDS_PER_STEP, StepPlan.recordsPerStep(config, worldSize));
        return node;
    }

    private void requireSameTrajectory(Path checkpoint, JsonNode saved) {
        ObjectNode now = trajectory();
        for (Map.Entry<String, JsonNode> entry : now.properties()) {
            String key = entry.getKey();
            if (!sameValue(entry.getValue(), saved.path(key))) {
                throw new IllegalArgumentException(checkpoint + " was written with " + key + " = " + saved.path(key)
                        + " but the config now says " + entry.getValue()
                        + "; resume with the settings the run started with, or start a new output_dir");
            }
        }
    }

    /** Equal JSON values, numbers by value (a long written is an int read back). */
    private static boolean sameValue(JsonNode a, JsonNode b) {
        return a.isNumber() && b.isNumber() ? a.decimalValue().compareTo(b.decimalValue()) == 0 : a.equals(b);
    }

    /**
     * One run of the loop over its fixed plan of steps. A step that does not log waits for the
     * device once ({@link TrainingStep}); the interval's metrics stay on the backend until a log
     * line, a checkpoint (whose trainer state carries their sums) or the end reads them.
     */
    private final class Loop implements AutoCloseable {
        private final MistralModel model;
        private final Optimizer optimizer;
        private final TrainingObjective objective;
        private final SpinCollator collator;
        private final List<SpinRecord> train, test;
        private final TrainingCheckpoints checkpoints;
        private final Optional<Path> from;
        private final JsonNode resumedState;
        private final TrainingLog log;
        private final int batchSize, accumulation;
        private final long stepsPerEpoch, totalSteps;
        private final LearningRateSchedule schedule;
        private final TrainingStep trainingStep;
        private final MetricMeans interval;
        /** The ZeRO-3 group (null on one device), this rank and the group's size. */
        private final Communicator group;
        private final int rank, ranks;
        /** Whether this rank writes what the run writes once: the log, the model, the results (rank 0). */
        private final boolean leader;
        private final PrintWriter console;
        private long intervalTokens, intervalNanos;
        private int[] order;
        private long orderEpoch = -1;

        Loop(MistralModel model, Optimizer optimizer, TrainingObjective objective, SpinCollator collator,
                DatasetMixer.Mixed data, TrainingCheckpoints checkpoints, Optional<Path> from, JsonNode resumedState, StepPlan plan,
                Communicator group, PrintWriter console) {
            this.model = model;
            this.optimizer = optimizer;
            this.objective = objective;
            this.collator = collator;
            this.train = data.train();
            this.test = data.test();
            this.checkpoints = checkpoints;
            this.from = from;
            this.resumedState = resumedState;
            this.log = new TrainingLog(config.outputDir());
            this.batchSize = plan.perDeviceBatch();
            this.accumulation = plan.accumulation();
            this.stepsPerEpoch = plan.stepsPerEpoch();
            this.totalSteps = plan.totalSteps();
            this.schedule = config.schedule(totalSteps);
            this.trainingStep = new TrainingStep(model, optimizer, objective, config.maxGradNorm());
            this.group = group;
            this.rank = group == null ? 0 : group.rank();
            this.ranks = group == null ? 1 : group.worldSize();
            this.leader = rank == 0;
            this.console = console;
            this.interval = new MetricMeans(model.backend(), objective.metricNames(), group);
        }

        @Override
        public void close() {
            interval.close();
        }

        Result run() throws IOException {
            Backend backend = model.backend();
            long start = 0;
            if (from.isPresent()) {
                start = TrainingCheckpoints.step(from.get());
                TrainingCheckpoints.loadOptimizer(from.get(), optimizer, model);
                interval.restore(resumedState.path("interval"));
                intervalTokens = resumedState.path("interval_tokens").asLong();
                intervalNanos = resumedState.path("interval_nanos").asLong();
                if (leader) {
                    log.truncateAfter(start);
                }
                console.printf("resuming from %s (step %d of %d)%n", from.get(), start, totalSteps);
            } else if (leader) {
                log.delete();
            }
            console.printf("%s training: %,d records, %d step%s (%d per epoch; %s%d x %d records per step), %s, lr %.3g (%s, %d warmup)%n",
                    mode == Mode.SPIN ? "SPIN" : "SFT", train.size(), totalSteps, totalSteps == 1 ? "" : "s", stepsPerEpoch,
                    ranks == 1 ? "" : ranks + " ranks (ZeRO-3) x ", accumulation, batchSize, optimizer.name(), config.learningRate(),
                    schedule.type(), schedule.warmupSteps());
            Map<String, Double> lastLog = Map.of(), lastEval = Map.of();
            long sessionStart = System.nanoTime();
            for (long step = start; step < totalSteps; step++) {
                long t0 = System.nanoTime();
                double lr = schedule.at(step);
                StepBatches batches = stepBatches(step);
                TrainingStep.Outcome outcome = trainingStep.run(batches.mine(), (float) lr, step + 1, interval);
                double gradNorm = outcome.gradNorm();
                intervalTokens += batches.tokens();
                intervalNanos += System.nanoTime() - t0;
                long done = step + 1;
                boolean epochEnd = done % stepsPerEpoch == 0 || done == totalSteps;
                try {
                    if (done % config.loggingSteps() == 0 || done == totalSteps) {
                        lastLog = logLine(done, gradNorm, lr, sessionStart, start);
                    }
                    String evalStrategy = config.evaluationStrategy();
                    if ((evalStrategy.equals("steps") && done % config.evalSteps() == 0) || (evalStrategy.equals("epoch") && epochEnd)) {
                        lastEval = evaluate(done);
                    }
                    String save = config.saveStrategy();
                    if ((save.equals("steps") && done % config.saveSteps() == 0) || (save.equals("epoch") && epochEnd)) {
                        ObjectNode state = state(done);
                        Path saved = group == null
                                ? checkpoints.save(done, model, optimizer, state, config.modelPath(), storage(), config.saveTotalLimit())
                                : checkpoints.saveSharded(done, model, optimizer, state, config.modelPath(), storage(),
                                        config.saveTotalLimit());
                        console.printf("saved %s%n", saved);
                    }
                } catch (IOException e) {
                    throw writeFailure("step " + done, e);
                }
            }
            Path out = config.outputDir();
            try {
                TrainingCheckpoints.writeModel(model, out, config.modelPath(), storage());
                if (!leader) {
                    return new Result(totalSteps, out, lastLog, lastEval);
                }
                ObjectNode results = JSON.createObjectNode().put("global_step", totalSteps).put("epoch", epochOf(totalSteps))
                        .put("mode", mode.name().toLowerCase(Locale.ROOT));
                lastLog.forEach(results::put);
                lastEval.forEach(results::put);
                AtomicFiles.writeString(out.resolve(RESULTS_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(results));
            } catch (IOException e) {
                throw writeFailure("after the last step (" + totalSteps + "), writing the final model", e);
            }
            console.printf("model saved to %s; metrics in %s%n", out, log.file());
            return new Result(totalSteps, out, lastLog, lastEval);
        }

        /**
         * A write that failed (a full disk, say): the message names when, the file (the writers name
         * it) and what a resume will continue from. The failed write removed its partial file.
         */
        private IOException writeFailure(String when, IOException e) {
            String resumeFrom;
            try {
                resumeFrom = checkpoints.latest().map(p -> p.getFileName() + " is intact; fix the cause and run again with --resume")
                        .orElse("no checkpoint was saved yet");
            } catch (IOException listing) {
                resumeFrom = "the checkpoints could not be listed (" + listing.getMessage() + ")";
            }
            return new IOException(when + ": " + e.getMessage() + "; " + resumeFrom, e);
        }

        /** This rank's micro-batches of a step and the tokens the whole step (every rank) reads. */
        private record StepBatches(List<TrainingStep.MicroBatch> mine, long tokens) {}

        /**
         * Micro-batches of a step: a function of seed, epoch and step alone, so a resume replays the
         * same order. The epoch's shuffled records make global micro-batches of
         * per_device_train_batch_size records; a step takes the next {@code accumulation x ranks}
         * of them, and rank r takes those at r, r + ranks, r + 2 ranks, ...: with one micro-batch
         * per rank, exactly the micro-batches one device with accumulation {@code ranks} takes, in
         * rank order. Each is weighted by its share of the whole step. Where the epoch's last step
         * has fewer micro-batches than ranks times rounds, the ranks left without one run a filler.
         */
        private StepBatches stepBatches(long step) {
            long epoch = step / stepsPerEpoch;
            if (epoch != orderEpoch) {
                order = NumpyPermutation.permutation(train.size(), config.seed() + epoch);
                orderEpoch = epoch;
            }
            long globalPerEpoch = (train.size() + batchSize - 1) / batchSize;
            long first = step % stepsPerEpoch * accumulation * ranks;
            long end = Math.min(first + (long) accumulation * ranks, globalPerEpoch);
            List<SpinBatch> all = new ArrayList<>();
            long tokens = 0;
            for (long m = first; m < end; m++) {
                List<SpinFeatures> features = new ArrayList<>();
                for (int i = (int) (m * batchSize); i < Math.min(train.size(), (m + 1) * batchSize); i++) {
                    features.add(collator.features(order[i], train.get(order[i])));
                }
                SpinBatch batch = objective.collate(features);
                all.add(batch);
                tokens += batch.attendedTokens();
            }
            List<TrainingStep.MicroBatch> shares = TrainingStep.shares(objective, all);
            List<TrainingStep.MicroBatch> mine = new ArrayList<>();
            long rounds = (all.size() + ranks - 1) / ranks;
            for (long j = 0; j < rounds; j++) {
                long index = j * ranks + rank;
                mine.add(index < all.size() ? shares.get((int) index)
                        : new TrainingStep.MicroBatch(all.getFirst(), 0, 0, true));
            }
            return new StepBatches(mine, tokens);
        }

        private Map<String, Double> logLine(long done, double gradNorm, double lr, long sessionStart, long firstStep)
                throws IOException {
            Map<String, Double> line = new LinkedHashMap<>(interval.means(""));
            line.put("grad_norm", gradNorm);
            line.put("learning_rate", lr);
            line.put("tokens_per_second", intervalNanos > 0 ? intervalTokens / (intervalNanos / 1e9) : 0.0);
            if (leader) {
                log.append(done, epochOf(done), line);
            }
            double perStep = (System.nanoTime() - sessionStart) / 1e9 / Math.max(1, done - firstStep);
            int filled = (int) (BAR_WIDTH * done / totalSteps);
            StringBuilder text = new StringBuilder(String.format("[%s%s] step %d/%d  epoch %.2f  loss %.4f", "#".repeat(filled),
                    ".".repeat(BAR_WIDTH - filled), done, totalSteps, epochOf(done), line.get("loss")));
            if (line.containsKey("rewards/margins")) {
                text.append(String.format("  margins %.4f  accuracy %.2f", line.get("rewards/margins"), line.get("rewards/accuracies")));
            }
            text.append(String.format("  lr %.3g  grad_norm %.3g  %,.0f tok/s  ETA %s", lr, gradNorm,
                    line.get("tokens_per_second"), duration(perStep * (totalSteps - done))));
            console.println(text);
            console.flush();
            interval.clear();
            intervalTokens = 0;
            intervalNanos = 0;
            return line;
        }

        /**
         * The test split's metrics, summed on the backend and read once. Over a group, rank r
         * evaluates batches r, r + ranks, ... (a filler where it has none left in a round) and the
         * sums are the group's.
         */
        private Map<String, Double> evaluate(long done) throws IOException {
            Map<String, Double> line;
            Backend backend = model.backend();
            try (MetricMeans means = new MetricMeans(backend, objective.metricNames(), group);
                    Tensor values = backend.allocate(DType.F64, objective.metricNames().size())) {
                int evalBatch = config.evalBatchSize();
                int batches = (test.size() + evalBatch - 1) / evalBatch;
                for (int j = 0; j * ranks < batches; j++) {
                    int index = j * ranks + rank;
                    boolean filler = index >= batches;
                    int start = (filler ? 0 : index) * evalBatch;
                    List<SpinFeatures> features = new ArrayList<>();
                    for (int i = start; i < Math.min(test.size(), start + evalBatch); i++) {
                        features.add(collator.features(i, test.get(i)));
                    }
                    SpinBatch batch = objective.collate(features);
                    objective.evaluate(batch, values);
                    if (!filler) {
                        means.add(values, objective.weight(batch));
                    }
                }
                line = means.means("eval_");
            }
            if (leader) {
                log.append(done, epochOf(done), line);
            }
            StringBuilder text = new StringBuilder(String.format("eval at step %d: loss %.4f", done, line.get("eval_loss")));
            if (line.containsKey("eval_rewards/margins")) {
                text.append(String.format("  margins %.4f  accuracy %.2f", line.get("eval_rewards/margins"),
                        line.get("eval_rewards/accuracies")));
            }
            console.println(text);
            return line;
        }

        private ObjectNode state(long done) {
            ObjectNode state = JSON.createObjectNode().put("global_step", done).put("epoch", epochOf(done))
                    .put("total_steps", totalSteps).put("steps_per_epoch", stepsPerEpoch).put("mode", mode.name())
                    .put("data_order", "numpy permutation of the mixed train split with seed + epoch")
                    .put("interval_tokens", intervalTokens).put("interval_nanos", intervalNanos);
            state.set("interval", interval.toJson(JSON));
            state.set("config", trajectory());
            return state;
        }

        private double epochOf(long step) {
            return (double) step / stepsPerEpoch;
        }
    }

    private ModelCheckpoint.StorageType storage() {
        return config.bf16() ? ModelCheckpoint.StorageType.BF16 : ModelCheckpoint.StorageType.F32;
    }

    private static String duration(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format("%dh%02dm", s / 3600, s % 3600 / 60)
                : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
