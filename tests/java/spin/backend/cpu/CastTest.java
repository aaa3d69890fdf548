package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.ValueLayout;
import java.math.BigDecimal;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * bf16 casts against an independent rounding rule: the nearest bf16 found by exact decimal
 * comparison of the two neighbouring candidates, ties to the even mantissa.
 */
class CastTest {
    private static CpuBackend cpu;

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
    }

    /** Nearest bf16 bit pattern of a finite float by exact arithmetic (not by bit tricks). */
    private static short nearestBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int truncated = bits & 0xFFFF0000;
        int next = truncated + 0x10000;
        BigDecimal exact = new BigDecimal(value);
        BigDecimal down = new BigDecimal(Float.intBitsToFloat(truncated));
        float upFloat = Float.intBitsToFloat(next);
        if (Float.isInfinite(upFloat)) {
            // Beyond the largest bf16, IEEE rounding compares against 2^128 (the next step).
            BigDecimal limit = new BigDecimal(Float.intBitsToFloat(truncated)).abs()
                    .add(new BigDecimal(Math.ulp(Float.intBitsToFloat(truncated))).multiply(BigDecimal.valueOf(65536)));
            int cmp = exact.abs().subtract(down.abs()).compareTo(limit.subtract(exact.abs()));
            return (short) ((cmp > 0 || (cmp == 0 && ((truncated >>> 16) & 1) == 1) ? next : truncated) >>> 16);
        }
        BigDecimal up = new BigDecimal(upFloat);
        int cmp = exact.subtract(down).abs().compareTo(up.subtract(exact).abs());
        boolean roundUp = cmp > 0 || (cmp == 0 && ((truncated >>> 16) & 1) == 1);
        return (short) ((roundUp ? next : truncated) >>> 16);
    }

    @Test
    void f32ToBf16RoundsToNearestEvenAndKeepsSpecials() {
        java.util.Random rng = new java.util.Random(Check.freshSeed());
        int n = 20_000;
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = Float.intBitsToFloat(rng.nextInt());
            if (Float.isNaN(values[i])) {
                values[i] = 1.5f;
            }
        }
        // Exact ties (lower 16 bits 0x8000) with odd and even kept mantissas, subnormals, signed zero.
        values[0] = Float.intBitsToFloat(0x3F808000);
        values[1] = Float.intBitsToFloat(0x3F818000);
        values[2] = Float.intBitsToFloat(0x00018000);
        values[3] = Float.MIN_VALUE;
        values[4] = -0f;
        values[5] = Float.MAX_VALUE;
        values[6] = Float.NEGATIVE_INFINITY;
        try (Tensor in = cpu.fromHost(values, n); Tensor out = cpu.allocate(DType.BF16, n)) {
            cpu.cast(out, in);
            for (int i = 0; i < n; i++) {
                short got = out.memory().getAtIndex(ValueLayout.JAVA_SHORT, i);
                short expected = Float.isInfinite(values[i]) ? (short) (Float.floatToRawIntBits(values[i]) >>> 16)
                        : nearestBf16(values[i]);
                assertEquals(expected, got, "bf16 of " + values[i] + " (bits " + Integer.toHexString(Float.floatToRawIntBits(values[i])) + ")");
            }
        }
        try (Tensor nan = cpu.fromHost(new float[] {Float.NaN, Float.intBitsToFloat(0x7F800001)}, 2);
                Tensor out = cpu.allocate(DType.BF16, 2)) {
            cpu.cast(out, nan);
            for (float f : cpu.read(out)) {
                assertTrue(Float.isNaN(f), "NaN must stay NaN, got " + f);
            }
        }
    }

    @Test
    void bf16ToF32IsExact() {
        int n = 1 << 16;
        try (Tensor in = cpu.allocate(DType.BF16, n); Tensor out = cpu.allocate(DType.F32, n)) {
            for (int i = 0; i < n; i++) {
                in.memory().setAtIndex(ValueLayout.JAVA_SHORT, i, (short) i);
            }
            cpu.cast(out, in);
            for (int i = 0; i < n; i++) {
                int bits = out.memory().getAtIndex(ValueLayout.JAVA_INT, i);
                assertEquals(i << 16, bits, "bf16 pattern " + Integer.toHexString(i));
            }
        }
    }
}
