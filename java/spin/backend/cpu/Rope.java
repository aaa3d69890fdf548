package spin.backend.cpu;

/** Rotary-embedding angles computed the way HF Mistral does, in fp32. */
final class Rope {
    private Rope() {}

    /** inv_freq[i] = 1 / theta^(2i / D), i < D/2, rounded to fp32 at each step as torch does. */
    static float[] inverseFrequencies(int headDim, float theta) {
        float[] inv = new float[headDim / 2];
        for (int i = 0; i < inv.length; i++) {
            float exponent = (float) (2 * i) / headDim;
            inv[i] = 1f / (float) Math.pow(theta, exponent);
        }
        return inv;
    }

    /** cos and sin of position * inv_freq[i] (the product rounded to fp32 first). */
    static void angles(int position, float[] invFreq, float[] cos, float[] sin) {
        for (int i = 0; i < invFreq.length; i++) {
            float angle = position * invFreq[i];
            cos[i] = (float) Math.cos(angle);
            sin[i] = (float) Math.sin(angle);
        }
    }

    /**
     * cos and sin of {@link #angles} for positions 0 .. positions-1, row p at p * headDim/2: the same
     * values, computed once instead of in every rope call (each takes a double cos and sin).
     */
    record Table(int headDim, float theta, int positions, float[] cos, float[] sin) {
        /** Most floats each of cos and sin may hold (16 MiB); rope computes positions beyond that directly. */
        static final int MAX_FLOATS = 1 << 22;

        static Table of(int headDim, float theta, int positions) {
            int half = headDim / 2;
            float[] invFreq = inverseFrequencies(headDim, theta);
            float[] cos = new float[positions * half], sin = new float[positions * half];
            float[] c = new float[half], s = new float[half];
            for (int p = 0; p < positions; p++) {
                angles(p, invFreq, c, s);
                System.arraycopy(c, 0, cos, p * half, half);
                System.arraycopy(s, 0, sin, p * half, half);
            }
            return new Table(headDim, theta, positions, cos, sin);
        }

        boolean covers(int headDim, float theta, int maxPosition) {
            return this.headDim == headDim && Float.floatToRawIntBits(this.theta) == Float.floatToRawIntBits(theta)
                    && maxPosition < positions;
        }
    }
}
