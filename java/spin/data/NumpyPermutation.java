package spin.data;

/**
 * {@code numpy.random.default_rng(seed).permutation(n)}, bit for bit: the order HF datasets'
 * {@code Dataset.shuffle(seed=...)} gives, and so the order in which the reference generates and
 * trains. numpy seeds PCG64 (XSL-RR output, 128-bit LCG) through a SeedSequence and shuffles with
 * Fisher-Yates from the end, drawing each index by rejection sampling under a bit mask on buffered
 * 32-bit halves of the 64-bit outputs.
 */
public final class NumpyPermutation {
    private static final long MULTIPLIER_HIGH = 0x2360ED051FC65DA4L;
    private static final long MULTIPLIER_LOW = 0x4385DF649FCCF645L;

    private long stateHigh, stateLow, incHigh, incLow;
    private boolean hasHalf;
    private int half;

    private NumpyPermutation(long seed) {
        long[] words = seedSequence(seed);
        long initHigh = words[0], initLow = words[1], seqHigh = words[2], seqLow = words[3];
        incHigh = (seqHigh << 1) | (seqLow >>> 63);
        incLow = (seqLow << 1) | 1;
        step();
        long low = stateLow + initLow;
        stateHigh += initHigh + (Long.compareUnsigned(low, stateLow) < 0 ? 1 : 0);
        stateLow = low;
        step();
    }

    /** The permutation of 0..n-1 that {@code numpy.random.default_rng(seed).permutation(n)} returns. */
    public static int[] permutation(int n, long seed) {
        if (n < 0 || seed < 0) {
            throw new IllegalArgumentException("need n >= 0 and seed >= 0, got n=" + n + ", seed=" + seed);
        }
        NumpyPermutation rng = new NumpyPermutation(seed);
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng.interval(i);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return a;
    }

    /** numpy's random_interval for max < 2^31: uniform in [0, max] by masking and rejection. */
    private int interval(int max) {
        int mask = max;
        mask |= mask >>> 1;
        mask |= mask >>> 2;
        mask |= mask >>> 4;
        mask |= mask >>> 8;
        mask |= mask >>> 16;
        int value;
        do {
            value = next32() & mask;
        } while (Integer.compareUnsigned(value, max) > 0);
        return value;
    }

    private int next32() {
        if (hasHalf) {
            hasHalf = false;
            return half;
        }
        long next = next64();
        hasHalf = true;
        half = (int) (next >>> 32);
        return (int) next;
    }

    private long next64() {
        step();
        return Long.rotateRight(stateHigh ^ stateLow, (int) (stateHigh >>> 58));
    }

    /** state = state * MULTIPLIER + inc (mod 2^128). */
    private void step() {
        long low = stateLow * MULTIPLIER_LOW;
        long high = Math.unsignedMultiplyHigh(stateLow, MULTIPLIER_LOW) + stateLow * MULTIPLIER_HIGH + stateHigh * MULTIPLIER_LOW;
        long sum = low + incLow;
        stateHigh = high + incHigh + (Long.compareUnsigned(sum, low) < 0 ? 1 : 0);
        stateLow = sum;
    }

    /** numpy's SeedSequence(seed).generate_state(4, uint64): a pool of four 32-bit words hashed out of the seed. */
    private static long[] seedSequence(long seed) {
        int[] entropy = seed >>> 32 == 0 ? new int[] {(int) seed} : new int[] {(int) seed, (int) (seed >>> 32)};
        int[] hashConst = {0x43b0d7e5};
        int[] pool = new int[4];
        for (int i = 0; i < pool.length; i++) {
            pool[i] = hashMix(i < entropy.length ? entropy[i] : 0, hashConst);
        }
        for (int src = 0; src < pool.length; src++) {
            for (int dst = 0; dst < pool.length; dst++) {
                if (src != dst) {
                    pool[dst] = mix(pool[dst], hashMix(pool[src], hashConst));
                }
            }
        }
        int hash = 0x8b51f9dd;
        int[] state = new int[8];
        for (int i = 0; i < state.length; i++) {
            int v = pool[i % pool.length] ^ hash;
            hash *= 0x58f38ded;
            v *= hash;
            v ^= v >>> 16;
            state[i] = v;
        }
        long[] words = new long[4];
        for (int i = 0; i < words.length; i++) {
            words[i] = Integer.toUnsignedLong(state[2 * i]) | ((long) state[2 * i + 1] << 32);
        }
        return words;
    }

    private static int hashMix(int value, int[] hashConst) {
        value ^= hashConst[0];
        hashConst[0] *= 0x931e8875;
        value *= hashConst[0];
        return value ^ (value >>> 16);
    }

    private static int mix(int x, int y) {
        int result = 0xca01f9dd * x - 0x4973f715 * y;
        return result ^ (result >>> 16);
    }
}
