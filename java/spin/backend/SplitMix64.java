package spin.backend;

/**
 * The random numbers {@link Backend#sampleRows} draws: SplitMix64 (Steele, Lea and Flood 2014) read
 * as a counter-based generator. A stream is a 64-bit start state; its draw n (n = 0, 1, ...) is
 * {@code mix(start + (n + 1) * GAMMA) >>> 11} scaled to [0, 1), the (n+1)-th number a SplitMix64
 * generator started there gives, computed without the n before it. A request's number for one
 * step therefore depends on its stream and on how many numbers it drew before, never on which
 * other rows share the batch. Written out here, rather than taken from java.util, so that a seed
 * gives the same samples on every JDK; kernels/sampling.cu computes the same bits.
 */
public final class SplitMix64 {
    private static final long GAMMA = 0x9E3779B97F4A7C15L;

    private SplitMix64() {}

    /** The start of the stream named by {@code key} under {@code seed} (a run's seed and a request's key). */
    public static long stream(long seed, long key) {
        return mix(seed ^ mix(key * GAMMA + 1));
    }

    /** Draw {@code draw} of {@code stream}: uniform in [0, 1) with 53 random bits. */
    public static double uniform(long stream, long draw) {
        return (mix(stream + (draw + 1) * GAMMA) >>> 11) * 0x1.0p-53;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
