package spin.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import picocli.CommandLine.Option;
import spin.backend.Backend;
import spin.data.GenerationRecords;
import spin.data.PromptFormat;
import spin.generate.BatchGenerator;
import spin.generate.SamplingParams;
import spin.generate.StopCriteria;
import spin.model.KvCache;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.text.Tokenizer;
import spin.text.TokenizerConfig;

/** The generation flags {@code spin generate} and {@code spin chat} share, and what they build. */
final class GenerationOptions {
    /** Tokens per KV-cache block: small enough that a sequence wastes little of its last block. */
    static final int BLOCK_SIZE = 16;
    /** Most tokens per model step; bounds the activations of prefill (long prompts go in chunks). */
    static final int STEP_TOKENS = 1024;

    @Option(names = "--batch-size", defaultValue = "16", description = "most sequences decoding together (default ${DEFAULT-VALUE})")
    int batchSize;

    @Option(names = "--max-new-tokens", defaultValue = "256", description = "tokens per answer at most (default ${DEFAULT-VALUE})")
    int maxNewTokens;

    @Option(names = "--prompt-format", defaultValue = "instruction",
            description = "instruction: \"### Instruction: {q}\\n\\n### Response: \" (the reference's); "
                    + "chat: the tokenizer's chat template, as in training (default ${DEFAULT-VALUE})")
    String promptFormat;

    @Option(names = "--add-bos",
            description = "start every prompt with the tokenizer's BOS token, as vLLM's tokenization does (the reference's "
                    + "generate_vllm.py); without it no BOS, as its generate.py")
    boolean addBos;

    @Option(names = "--skip-special-tokens",
            description = "decode answers without special tokens, as vLLM does (the reference's generate_vllm.py); "
                    + "without it they are kept and only </s> is removed, as its generate.py")
    boolean skipSpecialTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 = greedy, the reference's default (default ${DEFAULT-VALUE})")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1", description = "nucleus sampling; 1 = off (default ${DEFAULT-VALUE})")
    double topP;

    @Option(names = "--top-k", defaultValue = "0", description = "sample from the k most likely tokens; 0 = off (default ${DEFAULT-VALUE})")
    int topK;

    @Option(names = "--repetition-penalty", defaultValue = "1", description = "HF's repetition penalty; 1 = off (default ${DEFAULT-VALUE})")
    double repetitionPenalty;

    @Option(names = "--seed", defaultValue = "42",
            description = "sampling seed; each record draws from its own stream, so its answer does not depend on the batch (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--stop", description = "stop when the answer contains this text, and cut it there (repeatable)")
    List<String> stopStrings = new ArrayList<>();

    @Option(names = "--stop-token-id", description = "stop at this token id too, besides EOS (repeatable)")
    List<Integer> stopTokenIds = new ArrayList<>();

    @Option(names = "--kv-cache-mb", defaultValue = "1024",
            description = "KV-cache budget in MiB; when it is full, prompts wait for running answers to finish (default ${DEFAULT-VALUE})")
    long kvCacheMb;

    PromptFormat format() {
        return PromptFormat.parse(promptFormat);
    }

    SamplingParams sampling() {
        return new SamplingParams(temperature, topP, topK, repetitionPenalty, seed);
    }

    void validate() {
        if (batchSize < 1) {
            throw new IllegalArgumentException("--batch-size must be >= 1, got " + batchSize);
        }
        if (maxNewTokens < 1) {
            throw new IllegalArgumentException("--max-new-tokens must be >= 1, got " + maxNewTokens);
        }
        if (kvCacheMb < 1) {
            throw new IllegalArgumentException("--kv-cache-mb must be >= 1, got " + kvCacheMb);
        }
        format();
        sampling();
    }

    /**
     * The flags against the model's limits, from its config.json alone, so that nothing is loaded
     * for a run that cannot work: a prompt of at least one token and its answer must fit the
     * model's positions.
     */
    void validate(MistralConfig config, Path modelDir) {
        if (maxNewTokens > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("--max-new-tokens " + maxNewTokens + " and a prompt exceed the model's "
                    + "max_position_embeddings (" + config.maxPositionEmbeddings() + ") in " + modelDir.resolve(MistralConfig.FILE_NAME)
                    + "; use at most " + config.maxPositionEmbeddings() + " minus the prompt's tokens");
        }
    }

    /** EOS of the model's config and of the tokenizer (the reference stops at EOS), plus --stop-token-id. */
    StopCriteria stop(MistralConfig config, Tokenizer tokenizer) {
        Set<Integer> ids = new LinkedHashSet<>(List.of(config.eosTokenId(), tokenizer.eosId()));
        ids.addAll(stopTokenIds);
        return new StopCriteria(maxNewTokens, ids, stopStrings, tokens -> tokenizer.decode(tokens, false));
    }

    /**
     * A cache of at most {@code --kv-cache-mb}, and no larger than {@code wantedBlocks}: the most
     * the run could use at once.
     */
    KvCache cache(MistralConfig config, Backend backend, long wantedBlocks) {
        // saturating: a budget beyond 8 EiB is as good as unlimited (the cache is cut to wantedBlocks anyway)
        long budgetBytes = kvCacheMb > Long.MAX_VALUE >> 20 ? Long.MAX_VALUE : kvCacheMb << 20;
        long perBlock = KvCache.bytesPerToken(config, backend.computeType()) * BLOCK_SIZE;
        long budgetBlocks = budgetBytes / perBlock;
        if (budgetBlocks < 1) {
            throw new IllegalArgumentException("--kv-cache-mb " + kvCacheMb + " holds no block of " + BLOCK_SIZE + " tokens ("
                    + perBlock + " bytes for this model); raise it");
        }
        long blocks = Math.max(1, Math.min(budgetBlocks, wantedBlocks));
        long bytes = blocks * perBlock;
        if (bytes > backend.memoryBytes() || blocks > Integer.MAX_VALUE / BLOCK_SIZE) {
            throw new IllegalArgumentException(String.format("the KV cache would take %.1f GiB (--batch-size %d sequences of the "
                    + "longest answers, at most --kv-cache-mb %d) but %s has %.1f GiB of memory; lower --kv-cache-mb or --batch-size",
                    bytes / (double) (1L << 30), batchSize, kvCacheMb, backend.name(), backend.memoryBytes() / (double) (1L << 30)));
        }
        return new KvCache(config, backend, BLOCK_SIZE, (int) blocks);
    }

    BatchGenerator generator(MistralModel model, KvCache cache, Tokenizer tokenizer) {
        return new BatchGenerator(model, cache, batchSize, Math.max(STEP_TOKENS, batchSize), sampling(),
                stop(model.config(), tokenizer));
    }

    /** The prompt's token ids: no special tokens added, or the BOS token first with {@code --add-bos}. */
    int[] promptTokens(Tokenizer tokenizer, String prompt) {
        int[] ids = tokenizer.encode(prompt);
        if (!addBos) {
            return ids;
        }
        if (tokenizer.bosId() < 0) {
            throw new IllegalArgumentException("--add-bos: the tokenizer names no bos_token in " + TokenizerConfig.FILE_NAME
                    + "; drop --add-bos or add the model's bos_token");
        }
        int[] withBos = new int[ids.length + 1];
        withBos[0] = tokenizer.bosId();
        System.arraycopy(ids, 0, withBos, 1, ids.length);
        return withBos;
    }

    /**
     * The answer as the reference writes it: decoded (special tokens kept, or left out with
     * {@code --skip-special-tokens}), cut at a stop string, then {@code </s>} removed and left-stripped.
     */
    String answerText(int[] tokens, Tokenizer tokenizer, StopCriteria stop) {
        return GenerationRecords.cleanAnswer(stop.cut(tokenizer.decode(tokens, skipSpecialTokens)));
    }

    /** Refuses a tokenizer whose ids the model cannot embed. */
    static void requireCompatible(Tokenizer tokenizer, MistralConfig config, Path modelDir) {
        if (tokenizer.vocabSize() > config.vocabSize()) {
            throw new IllegalArgumentException(modelDir + ": the tokenizer has " + tokenizer.vocabSize()
                    + " tokens but config.json's vocab_size is " + config.vocabSize() + "; use the tokenizer the model was trained with");
        }
    }

    /** Blocks one sequence of up to {@code tokens} tokens needs. */
    static long blocksFor(long tokens) {
        return (tokens + BLOCK_SIZE - 1) / BLOCK_SIZE;
    }
}
