package spin.generate;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.FrozenWeights;
import spin.backend.SamplingRule;
import spin.backend.SplitMix64;
import spin.backend.Tensor;
import spin.model.KvCache;
import spin.model.MistralConfig;
import spin.model.MistralModel;

/**
 * Answers many prompts with continuous batching over a paged KV cache. Every model step is one
 * {@link MistralModel#extend} over all live sequences: decoding sequences feed their last sampled
 * token, newly admitted ones their prompt (in chunks when prompts are long), so the weights are
 * read once per step for the whole batch and nothing is padded. A sequence leaves at a stop token,
 * a stop string or max_new_tokens, giving its cache blocks back, and the next waiting prompt takes
 * its place in the following step.
 *
 * <p><b>Admission.</b> A request is admitted, in input order, only when the blocks reserved for
 * the worst case of every running sequence plus its own worst case fit in the cache. A sequence's
 * worst case is its prompt plus max_new_tokens - 1 tokens (the last sampled token is never fed
 * back), and a sequence never holds more blocks than its reservation, so the free blocks always
 * cover every running sequence's next token: a step can never find the cache full, and nothing is
 * preempted or recomputed. When the reservations are full, admission waits for a sequence to finish.
 * The cost is that blocks reserved for answers that end early at EOS sit idle until then. Requests
 * that could never fit (or never fit the model's positions) are refused before the first step.
 *
 * <p><b>Weights.</b> A run freezes the model's weights ({@link MistralModel#freezeWeights}) from
 * its first step to its end: they must not change during a run, and may between runs.
 *
 * <p><b>Choosing tokens.</b> Every step's tokens are chosen on the backend ({@link Backend#argmaxRows}
 * for greedy decoding without a repetition penalty, else {@link Backend#sampleRows}) and only one
 * id per sequence is read back.
 *
 * <p><b>Reproducibility.</b> Each request samples from its own random stream, started from the
 * run's seed and the request's key ({@link SplitMix64#stream}), taking draw n for its n-th answer
 * token, so its output does not depend on the other requests in its batch as long as the model's
 * logits for a sequence do not (with the CPU backend and the weights frozen, as they are during a
 * run, they are the same bits whatever the batch holds).
 */
public final class BatchGenerator {
    private final MistralModel model;
    private final KvCache cache;
    private final int maxSequences;
    private final int maxStepTokens;
    private final SamplingParams sampling;
    private final StopCriteria stop;
    /** Greedy without a repetition penalty needs only each row's argmax. */
    private final boolean argmaxOnly;

    /**
     * @param maxSequences most sequences decoding together (the batch size)
     * @param maxStepTokens most tokens in one step, which bounds the activation memory of prefill;
     *     at least {@code maxSequences}, so every decoding sequence advances every step
     */
    public BatchGenerator(MistralModel model, KvCache cache, int maxSequences, int maxStepTokens, SamplingParams sampling,
            StopCriteria stop) {
        if (maxSequences < 1) {
            throw new IllegalArgumentException("the batch size must be >= 1, got " + maxSequences);
        }
        if (maxStepTokens < maxSequences) {
            throw new IllegalArgumentException("tokens per step (" + maxStepTokens + ") must be at least the batch size ("
                    + maxSequences + ")");
        }
        this.model = model;
        this.cache = cache;
        this.maxSequences = maxSequences;
        this.maxStepTokens = maxStepTokens;
        this.sampling = sampling;
        this.stop = stop;
        this.argmaxOnly = sampling.rule().isGreedy() && !sampling.rule().penalizesRepetition();
    }

    /** The id each row of the step's logits chooses (-1 for a row holding a NaN), chosen on the backend. */
    private int[] choose(Tensor logits, Step step) {
        Backend backend = model.backend();
        SamplingRule rule = sampling.rule();
        int rows = step.sequences.size();
        try (Tensor ids = backend.allocate(DType.I32, rows)) {
            if (argmaxOnly) {
                backend.argmaxRows(ids, logits);
            } else {
                boolean penalizes = rule.penalizesRepetition();
                int longest = penalizes ? step.sequences.stream().mapToInt(s -> s.length).max().orElse(0) : 0;
                try (Tensor streams = rule.isGreedy() ? null : backend.fromHost(streams(step), rows, 2);
                        Tensor draws = rule.isGreedy() ? null : backend.fromHost(draws(step), rows);
                        Tensor history = penalizes ? backend.fromHost(history(step, longest), rows, longest) : null;
                        Tensor lengths = penalizes ? backend.fromHost(lengths(step), rows) : null) {
                    backend.sampleRows(ids, logits, rule, streams, draws, history, lengths);
                }
            }
            return backend.readInts(ids);
        }
    }

    /** Each sequence's stream as sampleRows takes it: low 32 bits, then high. */
    private static int[] streams(Step step) {
        int[] words = new int[2 * step.sequences.size()];
        for (int i = 0; i < step.sequences.size(); i++) {
            long stream = step.sequences.get(i).stream;
            words[2 * i] = (int) stream;
            words[2 * i + 1] = (int) (stream >>> 32);
        }
        return words;
    }

    /** A sequence takes draw n of its stream for its answer's token n: one draw per sampled token. */
    private static int[] draws(Step step) {
        return step.sequences.stream().mapToInt(s -> s.length - s.promptLength).toArray();
    }

    private static int[] history(Step step, int historyLength) {
        int[] history = new int[step.sequences.size() * historyLength];
        for (int i = 0; i < step.sequences.size(); i++) {
            Sequence s = step.sequences.get(i);
            System.arraycopy(s.tokens, 0, history, i * historyLength, s.length);
        }
        return history;
    }

    private static int[] lengths(Step step) {
        return step.sequences.stream().mapToInt(s -> s.length).toArray();
    }

    private static int checkedToken(int id, Sequence s) {
        if (id < 0) {
            throw new IllegalStateException("the model produced a NaN logit (request " + s.request.key() + ", answer token "
                    + (s.length - s.promptLength) + "); the weights are broken");
        }
        return id;
    }

    /**
     * Cache blocks that let the widest batch of these requests run at once: the sum of the
     * {@code maxSequences} largest worst cases. A larger cache would never be used.
     */
    public static long blocksForFullBatch(List<GenerationRequest> requests, int maxSequences, int maxNewTokens, int blockSize) {
        return requests.stream()
                .mapToLong(r -> blocks(worstCaseTokens(r.prompt().length, maxNewTokens), blockSize))
                .map(b -> -b).sorted().limit(maxSequences).map(b -> -b).sum();
    }

    private static long worstCaseTokens(int promptLength, int maxNewTokens) {
        return (long) promptLength + maxNewTokens - 1;
    }

    private static long blocks(long tokens, int blockSize) {
        return (tokens + blockSize - 1) / blockSize;
    }

    /** Generates an answer to every request; results come in request order. */
    @SuppressWarnings("try") // the frozen weights are held, not used, in the body
    public List<Generation> generate(List<GenerationRequest> requests, GenerationListener listener) {
        int capacity = cache.freeBlocks();
        Deque<Sequence> waiting = new ArrayDeque<>();
        for (int i = 0; i < requests.size(); i++) {
            waiting.add(admissible(requests.get(i), i, capacity));
        }
        Generation[] results = new Generation[requests.size()];
        List<Sequence> running = new ArrayList<>();
        int reserved = 0;
        // The weights stay fixed for the run: the backend may prepare them once (CPU: packed for its
        // GEMM) instead of in every step, and drops that copy at the end, so that a later run of a
        // changed model never sees it.
        try (FrozenWeights frozen = model.freezeWeights()) {
            while (!waiting.isEmpty() || !running.isEmpty()) {
                long start = System.nanoTime();
                while (running.size() < maxSequences && !waiting.isEmpty()
                        && reserved + waiting.peek().worstCaseBlocks <= capacity) {
                    Sequence s = waiting.poll();
                    s.start(cache.open());
                    reserved += s.worstCaseBlocks;
                    running.add(s);
                }
                int live = running.size();
                Step step = compose(running);
                int[] chosen = choose(model.extend(cache, step.cacheIds, step.tokens), step);
                int sampled = 0;
                for (int i = 0; i < step.sequences.size(); i++) {
                    Sequence s = step.sequences.get(i);
                    s.fed += step.tokens[i].length;
                    if (s.fed < s.length) {
                        continue; // a prompt chunk: its last token is not the prompt's last
                    }
                    s.append(checkedToken(chosen[i], s));
                    sampled++;
                    FinishReason finish = stop.check(s.tokens, s.promptLength, s.length);
                    if (finish != null) {
                        cache.release(s.cacheId);
                        reserved -= s.worstCaseBlocks;
                        running.remove(s);
                        Generation g = new Generation(s.request.key(), Arrays.copyOfRange(s.tokens, s.promptLength, s.length), finish);
                        results[s.position] = g;
                        listener.finished(g);
                    }
                }
                listener.stepDone(new GenerationListener.StepReport(step.promptTokens, step.decodeTokens, sampled, live,
                        waiting.size(), System.nanoTime() - start));
            }
        } finally {
            for (Sequence s : running) {
                cache.release(s.cacheId);
            }
        }
        return List.of(results);
    }

    /** Checks a request before any step runs, so that no step can fail because of it. */
    private Sequence admissible(GenerationRequest r, int position, int capacity) {
        MistralConfig config = model.config();
        int[] prompt = r.prompt();
        if (prompt.length == 0) {
            throw new IllegalArgumentException("request " + r.key() + ": the prompt has no tokens");
        }
        for (int t : prompt) {
            if (t < 0 || t >= config.vocabSize()) {
                throw new IllegalArgumentException("request " + r.key() + ": token id " + t + " is outside the model's vocabulary [0, "
                        + config.vocabSize() + ")");
            }
        }
        long worst = worstCaseTokens(prompt.length, stop.maxNewTokens());
        if (worst > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("request " + r.key() + ": a prompt of " + prompt.length + " tokens and "
                    + stop.maxNewTokens() + " new tokens exceed the model's max_position_embeddings ("
                    + config.maxPositionEmbeddings() + "); lower max_new_tokens");
        }
        long blocks = blocks(worst, cache.blockSize());
        if (blocks > capacity) {
            throw new IllegalArgumentException("request " + r.key() + ": a prompt of " + prompt.length + " tokens and "
                    + stop.maxNewTokens() + " new tokens need " + blocks + " KV-cache blocks of " + cache.blockSize()
                    + " tokens, but the cache has " + capacity + "; raise the KV-cache budget or lower max_new_tokens");
        }
        return new Sequence(r, position, (int) blocks, SplitMix64.stream(sampling.seed(), r.key()));
    }

    /**
     * The tokens of one step: every decoding sequence's last sampled token first, then prompt
     * tokens of sequences still in prefill, in admission order, up to {@code maxStepTokens}.
     */
    private Step compose(List<Sequence> running) {
        List<Sequence> sequences = new ArrayList<>(running.size());
        List<int[]> tokens = new ArrayList<>(running.size());
        int budget = maxStepTokens, decode = 0, prompt = 0;
        for (Sequence s : running) {
            if (s.length > s.promptLength) {
                sequences.add(s);
                tokens.add(new int[] {s.tokens[s.length - 1]});
                budget--;
                decode++;
            }
        }
        for (Sequence s : running) {
            if (s.length == s.promptLength && budget > 0) {
                int chunk = Math.min(budget, s.length - s.fed);
                sequences.add(s);
                tokens.add(Arrays.copyOfRange(s.tokens, s.fed, s.fed + chunk));
                budget -= chunk;
                prompt += chunk;
            }
        }
        int[] ids = new int[sequences.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = sequences.get(i).cacheId;
        }
        return new Step(sequences, ids, tokens.toArray(new int[0][]), prompt, decode);
    }

    private record Step(List<Sequence> sequences, int[] cacheIds, int[][] tokens, int promptTokens, int decodeTokens) {}

    /** A request, and once admitted its prompt and sampled tokens and how many of them the cache holds. */
    private final class Sequence {
        final GenerationRequest request;
        final int position;
        final int worstCaseBlocks;
        final long stream;
        final int promptLength;
        int[] tokens;
        int length;
        int fed;
        int cacheId;

        Sequence(GenerationRequest request, int position, int worstCaseBlocks, long stream) {
            this.request = request;
            this.position = position;
            this.worstCaseBlocks = worstCaseBlocks;
            this.stream = stream;
            this.promptLength = request.prompt().length;
        }

        /** Admission: the token buffer is made only now, so a long queue of waiting requests costs little. */
        void start(int id) {
            cacheId = id;
            tokens = Arrays.copyOf(request.prompt(), promptLength + stop.maxNewTokens());
            length = promptLength;
        }

        void append(int token) {
            tokens[length++] = token;
        }
    }
}
