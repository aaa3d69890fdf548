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
}
