package spin.backend;

/** bfloat16 encoding: the upper 16 bits of an IEEE-754 binary32. */
public final class BFloat16 {
    private BFloat16() {}

    /** Exact widening. */
    public static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** Round to nearest, ties to even; a NaN stays a (quiet) NaN, infinities stay infinite. */
    public static short fromFloat(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }
}
