package spin.generate;

/**
 * The random stream of one request: SplitMix64 (Steele, Lea and Flood 2014) started from a state
 * mixed out of the run's seed and the request's key. Each request draws only from its own stream,
 * so what it samples does not depend on which other requests share its batch or on the order in
 * which they finish. The algorithm is written out here, rather than taken from java.util, so that
 * a seed gives the same samples on every JDK.
 */
final class SequenceRandom {
    private static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;

    private long state;

    SequenceRandom(long seed, long key) {
        this.state = mix(seed ^ mix(key * GOLDEN_GAMMA + 1));
    }

    /** Uniform in [0, 1) with 53 random bits. */
    double nextDouble() {
        state += GOLDEN_GAMMA;
        return (mix(state) >>> 11) * 0x1.0p-53;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
