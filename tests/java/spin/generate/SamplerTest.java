package spin.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The sampler's choices against distributions computed here from first principles. The
 * distribution tests are Pearson chi-square goodness-of-fit tests at significance 0.001 on
 * 20,000 draws from a fixed seed (so they are deterministic); the critical values are the 0.999
 * quantiles of the chi-square distribution with (categories - 1) degrees of freedom.
 */
class SamplerTest {
    private static final float[] LOGITS = {1.2f, -0.3f, 0.5f, 2.0f, 0.0f, -1.5f, 0.9f, 0.4f};
    private static final int DRAWS = 20_000;
    private static final long SEED = 20_260_101L;
    /** chi2.ppf(0.999, df) for df = 0..7. */
    private static final double[] CRITICAL = {Double.NaN, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};

    private static int[] counts(SamplingParams params) {
        Sampler sampler = new Sampler(params, LOGITS.length);
        SequenceRandom random = new SequenceRandom(params.seed(), 0);
        int[] counts = new int[LOGITS.length];
        for (int i = 0; i < DRAWS; i++) {
            counts[sampler.next(LOGITS, 0, new int[0], 0, random)]++;
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
        int[] observed = counts(new SamplingParams(0.7, 1, 0, 1, SEED));
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
        assertFits(counts(new SamplingParams(1.3, 1, 4, 1, SEED)), softmax(1.3, keep), "top-k 4");
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
        assertFits(counts(new SamplingParams(t, topP, 0, 1, SEED)), softmax(t, keep), "top-p 0.8");
    }

    @Test
    void greedyTakesTheFirstLargestLogit() {
        Sampler sampler = new Sampler(SamplingParams.greedy(), 4);
        assertEquals(1, sampler.next(new float[] {0.5f, 3f, 3f, -1f}, 0, new int[0], 0, null));
        // Reads its row at the offset.
        assertEquals(2, sampler.next(new float[] {9f, 9f, 0f, 1f, 5f, 2f}, 2, new int[0], 0, null));
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerToken() {
        SamplingParams penalty = new SamplingParams(0, 1, 0, 1.5, 0);
        Sampler sampler = new Sampler(penalty, 2);
        assertEquals(1, sampler.next(new float[] {2.0f, 1.9f}, 0, new int[] {0}, 1, null), "2.0 / 1.5 < 1.9");
        assertEquals(1, sampler.next(new float[] {-1.0f, -1.2f}, 0, new int[] {0}, 1, null), "-1.0 * 1.5 < -1.2");
        assertEquals(0, sampler.next(new float[] {2.0f, 1.0f}, 0, new int[] {0, 0, 0}, 3, null),
                "a token seen three times is penalised once: 2.0 / 1.5 > 1.0");
        assertEquals(1, sampler.next(new float[] {2.0f, 1.9f}, 0, new int[] {0, 1}, 1, null),
                "only the first historyLength tokens count: 2.0 / 1.5 < 1.9, not 1.9 / 1.5");
    }

    @Test
    void aNanLogitIsAnError() {
        Sampler sampler = new Sampler(SamplingParams.greedy(), 2);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> sampler.next(new float[] {Float.NaN, 1f}, 0, new int[0], 0, null));
        assertTrue(e.getMessage().contains("NaN"), e.getMessage());
    }

    @Test
    void invalidParametersAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(-0.1, 1, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1, 0, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1, 1.1, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1, 1, -1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1, 1, 0, 0, 0));
    }
}
