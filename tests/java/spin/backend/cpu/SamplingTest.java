package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.SamplingRule;
import spin.backend.SplitMix64;
import spin.backend.Tensor;

/**
 * The CPU backend's sampleRows (the reference the devices are compared with) against distributions
 * computed here from first principles. The distribution tests are Pearson chi-square
 * goodness-of-fit tests at significance 0.001 on 20,000 draws from a fixed seed (so they are
 * deterministic): one call samples the same row 20,000 times, row i taking draw i of one stream,
 * as a request drawing once per token would. The critical values are the 0.999 quantiles of the
 * chi-square distribution with (categories - 1) degrees of freedom.
 */
class SamplingTest {
    private static final float[] LOGITS = {1.2f, -0.3f, 0.5f, 2.0f, 0.0f, -1.5f, 0.9f, 0.4f};
    private static final int DRAWS = 20_000;
    private static final long SEED = 20_260_101L;
    /** chi2.ppf(0.999, df) for df = 0..7. */
    private static final double[] CRITICAL = {Double.NaN, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};

    private static CpuBackend cpu;

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
    }

    /** sampleRows over {@code rows} rows of {@code vocab} logits with the given streams, draws and histories. */
    private static int[] sample(SamplingRule rule, float[] logits, int rows, long[] streams, int[] draws, int[][] history,
            int[] lengths) {
        int vocab = logits.length / rows;
        int l = history == null ? 0 : Arrays.stream(history).mapToInt(h -> h.length).max().orElse(0);
        int[] words = new int[2 * rows], flat = new int[rows * l];
        for (int i = 0; i < rows; i++) {
            words[2 * i] = (int) streams[i];
            words[2 * i + 1] = (int) (streams[i] >>> 32);
            if (history != null) {
                System.arraycopy(history[i], 0, flat, i * l, history[i].length);
            }
        }
        try (Tensor out = cpu.allocate(spin.backend.DType.I32, rows); Tensor x = cpu.fromHost(logits, rows, vocab);
                Tensor s = cpu.fromHost(words, rows, 2); Tensor d = cpu.fromHost(draws, rows);
                Tensor h = cpu.fromHost(flat, rows, l); Tensor lens = cpu.fromHost(lengths == null ? new int[rows] : lengths, rows)) {
            cpu.sampleRows(out, x, rule, s, d, h, lens);
            return cpu.readInts(out);
        }
    }

    /** One row of logits, no history, draw 0 of a fixed stream. */
    private static int sampleOne(SamplingRule rule, float[] logits, int[] history) {
        return sample(rule, logits, 1, new long[] {SplitMix64.stream(SEED, 0)}, new int[1], new int[][] {history},
                new int[] {history.length})[0];
    }

    private static int[] counts(SamplingRule rule) {
        float[] rows = new float[DRAWS * LOGITS.length];
        long[] streams = new long[DRAWS];
        for (int i = 0; i < DRAWS; i++) {
            System.arraycopy(LOGITS, 0, rows, i * LOGITS.length, LOGITS.length);
            streams[i] = SplitMix64.stream(SEED, 0);
        }
        int[] counts = new int[LOGITS.length];
        for (int token : sample(rule, rows, DRAWS, streams, IntStream.range(0, DRAWS).toArray(), null, null)) {
            counts[token]++;
        }
        return counts;
    }

    /** softmax(logits / t) over the tokens {@code keep} allows, 0 elsewhere. */
    private static double[] softmax(double t, boolean[] keep) {
        double[] p = new double[LOGITS.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = keep[i] ? Math.exp(LOGITS[i] / t) : 0;
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    private static boolean[] all() {
        boolean[] keep = new boolean[LOGITS.length];
        Arrays.fill(keep, true);
        return keep;
    }

    /** Pearson's statistic over the categories with positive expected probability; others must be empty. */
    private static double chiSquare(int[] observed, double[] p) {
        double chi2 = 0;
        for (int i = 0; i < p.length; i++) {
            if (p[i] == 0) {
                assertEquals(0, observed[i], "token " + i + " is filtered out but was drawn");
                continue;
            }
            double expected = DRAWS * p[i];
            assertTrue(expected >= 5, "the test needs >= 5 expected draws per category");
            chi2 += (observed[i] - expected) * (observed[i] - expected) / expected;
        }
        return chi2;
    }

    private static int degreesOfFreedom(double[] p) {
        return (int) Arrays.stream(p).filter(x -> x > 0).count() - 1;
    }

    private static void assertFits(int[] observed, double[] p, String what) {
        double chi2 = chiSquare(observed, p);
        int df = degreesOfFreedom(p);
        assertTrue(chi2 < CRITICAL[df], what + ": chi-square " + chi2 + " with " + df + " degrees of freedom rejects the fit at 0.001 "
                + "(counts " + Arrays.toString(observed) + ", expected p " + Arrays.toString(p) + ")");
    }

    @Test
    void temperatureSamplesFollowSoftmaxOfLogitsOverTemperature() {
        int[] observed = counts(new SamplingRule(0.7, 1, 0, 1));
        assertFits(observed, softmax(0.7, all()), "temperature 0.7");
        // The test has power: the same draws are far from the distribution at temperature 1.
        assertTrue(chiSquare(observed, softmax(1.0, all())) > CRITICAL[7] * 4, "the test cannot tell temperature 0.7 from 1");
    }

    @Test
    void topKSamplesFromTheKMostLikelyTokensOnly() {
        boolean[] keep = new boolean[LOGITS.length];
        for (int token : new int[] {3, 0, 6, 2}) { // the four largest logits
            keep[token] = true;
        }
        assertFits(counts(new SamplingRule(1.3, 1, 4, 1)), softmax(1.3, keep), "top-k 4");
    }

    @Test
    void topPSamplesFromTheSmallestNucleusReachingP() {
        double t = 0.9, topP = 0.8;
        double[] full = softmax(t, all());
        Integer[] byProbability = IntStream.range(0, LOGITS.length).boxed()
                .sorted(Comparator.comparingDouble((Integer i) -> -full[i])).toArray(Integer[]::new);
        boolean[] keep = new boolean[LOGITS.length];
        double before = 0;
        for (int i : byProbability) {
            if (before < topP) {
                keep[i] = true;
                before += full[i];
            }
        }
        int kept = (int) IntStream.range(0, keep.length).filter(i -> keep[i]).count();
        assertTrue(kept > 1 && kept < LOGITS.length, "the nucleus must cut somewhere inside the vocabulary");
        assertFits(counts(new SamplingRule(t, topP, 0, 1)), softmax(t, keep), "top-p 0.8");
    }

    @Test
    void topPKeepsTiedTokensInIdOrderUntilTheMassBeforeThemReachesP() {
        // Four equal logits and no other mass: each holds a quarter, so p = 0.5 keeps the two
        // smallest ids (the mass before the third is 0.5, not below p); every draw lands on one of
        // them, and both occur.
        float inf = Float.POSITIVE_INFINITY;
        float[] logits = {-inf, 1f, -inf, 1f, 1f, -inf, 1f};
        int[] chosen = counts(logits, new SamplingRule(1, 0.5, 0, 1), 200);
        assertEquals(200, chosen[1] + chosen[3], Arrays.toString(chosen));
        assertTrue(chosen[1] > 0 && chosen[3] > 0, Arrays.toString(chosen));
    }

    private static int[] counts(float[] logits, SamplingRule rule, int draws) {
        float[] rows = new float[draws * logits.length];
        long[] streams = new long[draws];
        for (int i = 0; i < draws; i++) {
            System.arraycopy(logits, 0, rows, i * logits.length, logits.length);
            streams[i] = SplitMix64.stream(SEED, 1);
        }
        int[] counts = new int[logits.length];
        for (int token : sample(rule, rows, draws, streams, IntStream.range(0, draws).toArray(), null, null)) {
            counts[token]++;
        }
        return counts;
    }

    @Test
    void aRowsTokenDependsOnItsOwnStreamAndDrawOnly() {
        SplittableRandom random = new SplittableRandom(7);
        int rows = 9, vocab = 50;
        float[] logits = new float[rows * vocab];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) random.nextGaussian();
        }
        long[] streams = random.longs(rows).toArray();
        int[] draws = random.ints(rows, 0, 100).toArray();
        SamplingRule rule = new SamplingRule(1.1, 0.9, 30, 1);
        int[] together = sample(rule, logits, rows, streams, draws, null, null);
        for (int i = 0; i < rows; i++) {
            int alone = sample(rule, Arrays.copyOfRange(logits, i * vocab, (i + 1) * vocab), 1, new long[] {streams[i]},
                    new int[] {draws[i]}, null, null)[0];
            assertEquals(together[i], alone, "row " + i);
        }
    }

    @Test
    void greedyTakesTheFirstLargestLogit() {
        SamplingRule greedy = new SamplingRule(0, 1, 0, 1);
        try (Tensor out = cpu.allocate(spin.backend.DType.I32, 2);
                Tensor x = cpu.fromHost(new float[] {0.5f, 3f, 3f, -1f, 9f, 1f, 9f, 2f}, 2, 4)) {
            // Greedy reads no stream, draw or history.
            cpu.sampleRows(out, x, greedy, null, null, null, null);
            assertArrayEquals(new int[] {1, 0}, cpu.readInts(out));
            cpu.argmaxRows(out, x);
            assertArrayEquals(new int[] {1, 0}, cpu.readInts(out));
        }
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerToken() {
        SamplingRule penalty = new SamplingRule(0, 1, 0, 1.5);
        assertEquals(1, sampleOne(penalty, new float[] {2.0f, 1.9f}, new int[] {0}), "2.0 / 1.5 < 1.9");
        assertEquals(1, sampleOne(penalty, new float[] {-1.0f, -1.2f}, new int[] {0}), "-1.0 * 1.5 < -1.2");
        assertEquals(0, sampleOne(penalty, new float[] {2.0f, 1.0f}, new int[] {0, 0, 0}),
                "a token seen three times is penalised once: 2.0 / 1.5 > 1.0");
        assertEquals(1, sample(penalty, new float[] {2.0f, 1.9f}, 1, new long[1], new int[1], new int[][] {{0, 1}}, new int[] {1})[0],
                "only the first historyLength tokens count: 2.0 / 1.5 < 1.9, not 1.9 / 1.5");
    }

    @Test
    void aRowHoldingANanGivesMinusOne() {
        for (SamplingRule rule : new SamplingRule[] {new SamplingRule(0, 1, 0, 1), new SamplingRule(0, 1, 0, 1.2),
                new SamplingRule(1, 0.9, 5, 1)}) {
            assertEquals(-1, sampleOne(rule, new float[] {0f, Float.NaN, 1f}, new int[] {2}), rule.toString());
        }
    }

    @Test
    void anInfiniteMaximumOrARowOfMinusInfinityGivesTheFirstLargest() {
        SamplingRule rule = new SamplingRule(1, 0.9, 2, 1);
        float inf = Float.POSITIVE_INFINITY;
        assertEquals(1, sampleOne(rule, new float[] {0f, inf, 5f, inf}, new int[0]));
        assertEquals(0, sampleOne(rule, new float[] {-inf, -inf, -inf}, new int[0]));
    }

    @Test
    void historyOutsideTheVocabularyOrItsRowIsRefused() {
        SamplingRule penalty = new SamplingRule(0, 1, 0, 1.5);
        IllegalArgumentException id = assertThrows(IllegalArgumentException.class,
                () -> sampleOne(penalty, new float[] {1f, 2f}, new int[] {2}));
        assertTrue(id.getMessage().contains("outside the vocabulary"), id.getMessage());
        IllegalArgumentException length = assertThrows(IllegalArgumentException.class,
                () -> sample(penalty, new float[] {1f, 2f}, 1, new long[1], new int[1], new int[][] {{0}}, new int[] {2}));
        assertTrue(length.getMessage().contains("history length 2"), length.getMessage());
    }

    @Test
    void invalidRulesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new SamplingRule(-0.1, 1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new SamplingRule(Double.POSITIVE_INFINITY, 1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new SamplingRule(1, 0, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new SamplingRule(1, 1.1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new SamplingRule(1, 1, -1, 1));
        assertThrows(IllegalArgumentException.class, () -> new SamplingRule(1, 1, 0, 0));
    }
}
