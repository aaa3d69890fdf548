package spin.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.data.DataSelection;
import spin.data.DatasetReader.Indexed;
import spin.data.SpinDatasetWriter;
import spin.data.SpinRecord;
import spin.model.MistralConfig;
import spin.model.ModelCheckpoint;
import spin.text.ChatMessage;
import spin.text.TestTokenizer;
import spin.text.Tokenizer;
import spin.text.TokenizerConfig;
import spin.train.TinyTrainingData;

/**
 * The launch through the real command line, with the environment torchrun or Slurm would set
 * injected: the world each command resolves, the launch errors, and generate on several CPU
 * devices writing the same bytes as on one.
 */
class LaunchCommandsTest {
    private static final String[] QUESTIONS = {"What is the capital of France?", "Write a haiku about the sea.",
        "How do I sort a list?", "Explain photosynthesis briefly.", "Name three primary colours.", "What is 2 + 2?",
        "Tell me a joke.", "Translate hello to Spanish.", "Why is the sky blue?", "Give me a synonym for happy.",
        "Count to five.", "What is a prime number?", "Describe a cat."};

    @TempDir
    static Path shared;
    private static Path model, data, trainModel, trainData;

    @TempDir
    Path dir;

    /** A tiny model with a wide initialisation (answers vary token to token) and 13 records (fractions of 5 leave 3 over). */
    @BeforeAll
    static void writeModelAndData() throws IOException {
        model = shared.resolve("tiny");
        MistralConfig tiny = MistralConfig.tiny();
        MistralConfig config = new MistralConfig(tiny.vocabSize(), tiny.hiddenSize(), tiny.intermediateSize(), tiny.numHiddenLayers(),
                tiny.numAttentionHeads(), tiny.numKeyValueHeads(), tiny.headDim(), tiny.maxPositionEmbeddings(), tiny.rmsNormEps(),
                tiny.ropeTheta(), tiny.slidingWindow(), false, 0.3f, tiny.bosTokenId(), tiny.eosTokenId());
        ModelCheckpoint.writeInitialized(config, model, ModelCheckpoint.StorageType.F32, 11, ModelCheckpoint.DEFAULT_SHARD_BYTES);
        for (String file : new String[] {Tokenizer.FILE_NAME, TokenizerConfig.FILE_NAME}) {
            Files.copy(TestTokenizer.directory().resolve(file), model.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        }
        data = shared.resolve("data");
        List<SpinRecord> train = new ArrayList<>();
        for (int i = 0; i < QUESTIONS.length; i++) {
            train.add(record(QUESTIONS[i], "Gold " + i));
        }
        SpinDatasetWriter.write(data.resolve("train_prefs-00000-of-00001.parquet"), train);
        SpinDatasetWriter.write(data.resolve("test_prefs-00000-of-00001.parquet"), train.subList(0, 3));
        trainModel = TinyTrainingData.model(shared.resolve("train-model"));
        trainData = TinyTrainingData.reversals(shared.resolve("train-data"));
    }

    private static SpinRecord record(String question, String answer) {
        return new SpinRecord(List.of(ChatMessage.user(question), ChatMessage.assistant(answer)),
                List.of(ChatMessage.user(question), ChatMessage.assistant("")));
    }

    /** Every file of a generate run's output directory, by name, as bytes (the lock file excluded). */
    private static Map<String, byte[]> shards(Path out) throws IOException {
        try (Stream<Path> files = Files.list(out)) {
            return files.filter(p -> p.getFileName().toString().endsWith(".jsonl"))
                    .collect(java.util.stream.Collectors.toMap(p -> p.getFileName().toString(), p -> {
                        try {
                            return Files.readAllBytes(p);
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    }));
        }
    }

    private static void assertSameShards(Map<String, byte[]> expected, Map<String, byte[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name), actual.get(name), name + " differs from the one-device run");
        }
    }

    private String[] generate(Path out, String... more) {
        List<String> args = new ArrayList<>(List.of("generate", "--model", model.toString(), "--input-dir", data.toString(),
                "--output-dir", out.toString(), "--max-new-tokens", "8"));
        args.addAll(List.of(more));
        return args.toArray(String[]::new);
    }

    @Test
    void generateOnSeveralCpuDevicesWritesTheBytesOfOneDevice() throws IOException {
        for (String[] sampling : new String[][] {{}, {"--temperature", "1.0", "--top-p", "0.9", "--seed", "3"}}) {
            String[] fractions = {"--frac-len", "5", "--num-fracs", "3"}; // 5 + 5 + 3 records
            Path one = dir.resolve("one" + sampling.length), two = dir.resolve("two" + sampling.length),
                    four = dir.resolve("four" + sampling.length);
            CliRun.Result single = CliRun.run(Map.of(), concat(generate(one, fractions), concat(sampling, "--threads", "2")));
            assertEquals(0, single.exitCode(), single.err());
            assertFalse(single.out().contains("devices"), single.out());
            CliRun.Result split = CliRun.run(Map.of(), concat(generate(two, fractions), concat(sampling, "--devices", "2", "--threads", "2")));
            assertEquals(0, split.exitCode(), split.err());
            assertTrue(split.out().startsWith("generating on 2 devices: cpu, cpu (1 CPU thread each)\n"), split.out());
            // four devices: the 3-record fraction leaves one device without prompts
            CliRun.Result wide = CliRun.run(Map.of(), concat(generate(four, fractions), concat(sampling, "--devices", "4", "--batch-size", "2")));
            assertEquals(0, wide.exitCode(), wide.err());
            Map<String, byte[]> expected = shards(one);
            assertEquals(java.util.Set.of("loser_0.jsonl", "loser_1.jsonl", "loser_2.jsonl"), expected.keySet());
            assertSameShards(expected, shards(two));
            assertSameShards(expected, shards(four));
        }
    }

    @Test
    void generateFailingOnOneDeviceReportsThatDevice() throws IOException {
        // one prompt too long for the model's positions: refused on the device whose slice holds it
        Path tooLong = dir.resolve("too-long");
        List<SpinRecord> records = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            records.add(record(QUESTIONS[i], "Gold"));
        }
        records.set(4, record("word ".repeat(3000), "Gold"));
        SpinDatasetWriter.write(tooLong.resolve("train_prefs-00000-of-00001.parquet"), records);
        List<Indexed<SpinRecord>> indexed = new ArrayList<>();
        for (int i = 0; i < records.size(); i++) {
            indexed.add(new Indexed<>(i, records.get(i)));
        }
        List<Indexed<SpinRecord>> shuffled = DataSelection.shuffled(indexed, DataSelection.REFERENCE_SEED);
        int position = 0;
        while (shuffled.get(position).index() != 4) {
            position++;
        }
        int device = position < 3 ? 0 : 1; // two devices take 3 prompts each
        Path out = dir.resolve("failed");
        String[] args = {"generate", "--model", model.toString(), "--input-dir", tooLong.toString(), "--output-dir", out.toString(),
            "--max-new-tokens", "8"};
        CliRun.Result alone = CliRun.run(Map.of(), args);
        assertEquals(1, alone.exitCode());
        assertTrue(alone.err().startsWith("spin generate: request 4: a prompt of "), alone.err());
        CliRun.Result split = CliRun.run(Map.of(), concat(args, "--devices", "2"));
        assertEquals(1, split.exitCode());
        assertEquals("spin generate: device " + device + " (cpu): " + alone.err().substring("spin generate: ".length()), split.err());
        assertFalse(Files.exists(out.resolve("loser_0.jsonl")), "no shard is written when a device failed");
    }

    @Test
    void generateTakesItsDevicesFromASlurmTaskPerNode() throws IOException {
        // srun --ntasks-per-node 1 spin generate ... --devices 2: a one-task step, the task drives both devices
        Map<String, String> slurm = Map.of("SLURM_NTASKS", "1", "SLURM_PROCID", "0", "SLURM_LOCALID", "0", "SLURM_NODEID", "0",
                "SLURM_NNODES", "1", "SLURM_JOB_NODELIST", "node[01]");
        Path out = dir.resolve("slurm");
        CliRun.Result r = CliRun.run(slurm, generate(out, "--devices", "2", "--threads", "2"));
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().startsWith("generating on 2 devices: cpu, cpu"), r.out());
        assertTrue(Files.exists(out.resolve("loser_0.jsonl")));
    }

    @Test
    void generateRefusesAWorldOfSeveralProcesses() {
        Map<String, String> torchrun = Map.of("WORLD_SIZE", "2", "RANK", "1", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "2",
                "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29511");
        CliRun.Result r = CliRun.run(torchrun, generate(dir.resolve("never")));
        assertEquals(1, r.exitCode());
        assertEquals("spin generate: spin generate drives the devices of one process, but the launch gives 2 ranks (torchrun's "
                + "environment): rank 1 on node 0 of 1 (cpu), master 127.0.0.1:29511; start it once per node with --devices N (or "
                + "--gpus N) and its own --output-dir and --data-frac, or outside torchrun/srun\n", r.err());
        assertFalse(Files.exists(dir.resolve("never")), "refused before the output directory is made");
    }

    private Path trainConfig(Path out) throws IOException {
        Path yaml = dir.resolve("config.yaml");
        Files.writeString(yaml, "model_name_or_path: " + trainModel + "\ndataset_mixer:\n  " + trainData + ": 1.0\n"
                + "output_dir: " + out + "\nper_device_train_batch_size: 8\nmax_length: 64\nmax_prompt_length: 32\n"
                + "num_train_epochs: 1\nlogging_steps: 1\n");
        return yaml;
    }

    @Test
    void trainResolvesTheWorldTorchrunAndSlurmDescribe() throws IOException {
        Path out = dir.resolve("train");
        String yaml = trainConfig(out).toString();
        // torchrun --nnodes 2 --nproc-per-node 4: the process of global rank 6, on CPU ranks
        Map<String, String> torchrun = Map.of("WORLD_SIZE", "8", "RANK", "6", "LOCAL_RANK", "2", "LOCAL_WORLD_SIZE", "4",
                "GROUP_RANK", "1", "MASTER_ADDR", "head", "MASTER_PORT", "29501");
        CliRun.Result perGpu = CliRun.run(torchrun, "train", yaml);
        assertEquals(1, perGpu.exitCode());
        assertEquals("spin train: world size 8: data-parallel training is not wired yet (ZeRO-3 is in progress); train on one "
                + "device for now (the launch gave 8 ranks (torchrun's environment): rank 6 on node 1 of 2 (cpu), master head:29501)\n",
                perGpu.err());
        // srun --nodes 2 --ntasks-per-node 1 spin sft cfg.yaml --devices 3: node 1 drives ranks 3..5
        Map<String, String> slurm = Map.of("SLURM_NTASKS", "2", "SLURM_PROCID", "1", "SLURM_LOCALID", "0", "SLURM_NODEID", "1",
                "SLURM_NNODES", "2", "SLURM_NTASKS_PER_NODE", "1", "SLURM_JOB_NODELIST", "gpu[12-13]");
        CliRun.Result perNode = CliRun.run(slurm, "sft", yaml, "--devices", "3");
        assertEquals(1, perNode.exitCode());
        assertTrue(perNode.err().endsWith("(the launch gave 6 ranks (Slurm's environment): ranks 3..5 on node 1 of 2 (3 x cpu), "
                + "master gpu12:29500)\n"), perNode.err());
        // flags come before the environment
        CliRun.Result flags = CliRun.run(torchrun, "train", yaml, "--devices", "2", "--nnodes", "2", "--node-rank", "0",
                "--master-addr", "n0", "--master-port", "29999", "--rendezvous-timeout", "5");
        assertTrue(flags.err().endsWith("(the launch gave 4 ranks (--nnodes/--node-rank): ranks 0..1 on node 0 of 2 (2 x cpu), "
                + "master n0:29999)\n"), flags.err());
        assertFalse(Files.exists(out), "a refused world loads and writes nothing");
    }

    @Test
    void oneRankFromTheEnvironmentTrainsAsWithoutIt() throws IOException {
        Path out = dir.resolve("one");
        Map<String, String> torchrun = Map.of("WORLD_SIZE", "1", "RANK", "0", "LOCAL_RANK", "0", "LOCAL_WORLD_SIZE", "1",
                "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29502");
        CliRun.Result r = CliRun.run(torchrun, "train", trainConfig(out).toString(), "--threads=2", "--max_steps=1");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(Files.exists(out.resolve("model.safetensors")));
    }

    @Test
    void badLaunchInputsAreOneLineErrorsNamingTheFlagOrVariable() throws IOException {
        String yaml = trainConfig(dir.resolve("bad")).toString();
        Map<String, String> badPort = Map.of("WORLD_SIZE", "2", "RANK", "1", "LOCAL_RANK", "1", "MASTER_ADDR", "h", "MASTER_PORT", "port");
        assertEquals("spin train: MASTER_PORT (torchrun's environment) \"port\" is not a port number; use a free TCP port 1 .. 65535 "
                + "(the same on every node), e.g. 29500\n", CliRun.run(badPort, "train", yaml).err());
        assertEquals("spin train: --node-rank 1 needs --nnodes (how many nodes the run has); add --nnodes N, or drop --node-rank for a "
                + "run on one node\n", CliRun.run(Map.of(), "train", yaml, "--node-rank", "1").err());
        assertEquals("spin train: --gpus 2 runs on GPUs but --device is cpu; use --devices 2 for cpu ranks, or drop --device\n",
                CliRun.run(Map.of(), "train", yaml, "--gpus", "2", "--device", "cpu").err());
        assertEquals("spin generate: --devices and --gpus both say how many devices to drive; give one (--gpus N is --devices N "
                + "--device cuda)\n", CliRun.run(Map.of(), generate(dir.resolve("g"), "--gpus", "2", "--devices", "2")).err());
        assertEquals("spin generate: --devices 2 with --device cuda:3: that device names one GPU, but --devices 2 drives GPUs 0 .. 1; "
                + "use --device cuda (or set CUDA_VISIBLE_DEVICES to choose which GPUs)\n",
                CliRun.run(Map.of(), generate(dir.resolve("g"), "--devices", "2", "--device", "cuda:3")).err());
        assertEquals("spin generate: RANK=2 is not below WORLD_SIZE=2 (torchrun's environment); ranks run 0 .. WORLD_SIZE - 1: fix the "
                + "launch script\n", CliRun.run(Map.of("WORLD_SIZE", "2", "RANK", "2", "LOCAL_RANK", "0"), generate(dir.resolve("g"))).err());
    }

    @Test
    void iteratePassesTheLaunchFlagsToItsStages() throws IOException {
        Path work = dir.resolve("work");
        CliRun.Result r = CliRun.run(Map.of(), "iterate", "--iteration", "0", "--model", trainModel.toString(), "--data",
                trainData.toString(), "--work", work.toString(), "--max-new-tokens", "4", "--devices", "2", "--threads", "2",
                "--per_device_train_batch_size=8", "--max_length=64", "--max_prompt_length=32");
        assertEquals(1, r.exitCode());
        assertTrue(r.out().contains("generating on 2 devices: cpu, cpu (1 CPU thread each)"), r.out());
        assertTrue(Files.exists(work.resolve("iter0/generated/loser_0.jsonl")), "the generation stage ran on both devices");
        assertTrue(r.err().endsWith("spin iterate: world size 2: data-parallel training is not wired yet (ZeRO-3 is in progress); "
                + "train on one device for now (the launch gave 2 ranks (one process): ranks 0..1 on node 0 of 1 (2 x cpu))\n"), r.err());
    }

    private static String[] concat(String[] first, String... second) {
        String[] all = Arrays.copyOf(first, first.length + second.length);
        System.arraycopy(second, 0, all, first.length, second.length);
        return all;
    }
}
