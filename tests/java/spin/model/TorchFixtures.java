package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import spin.io.SafetensorsFile;
import spin.io.TensorEntry;

/** Reading the fixtures tools/mistral_reference.py writes (I64 ids, F32 values), and comparing against them. */
public final class TorchFixtures {
    public static final Path DIR = Path.of("tests", "fixtures", "tiny-mistral");
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TorchFixtures() {}

    public static int[] ints(SafetensorsFile file, String name) throws IOException {
        TensorEntry t = file.tensor(name);
        int[] out = new int[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < out.length; i++) {
            out[i] = Math.toIntExact(t.data().getAtIndex(LE_LONG, i));
        }
        return out;
    }

    public static float[] floats(SafetensorsFile file, String name) throws IOException {
        TensorEntry t = file.tensor(name);
        float[] out = new float[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.data().getAtIndex(LE_FLOAT, i);
        }
        return out;
    }

    /** ||actual - expected|| / ||expected||, refusing an all-zero reference. */
    public static double relativeError(float[] actual, float[] expected) {
        assertEquals(expected.length, actual.length);
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.length; i++) {
            diff += (actual[i] - (double) expected[i]) * (actual[i] - (double) expected[i]);
            norm += (double) expected[i] * expected[i];
        }
        assertTrue(norm > 0, "reference is all zeros");
        return Math.sqrt(diff / norm);
    }
}
