package spin.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.model.ParameterLayout.Names;
import spin.model.ParameterLayout.Slot;

/** Stacked views of adjacent weights, over a whole buffer and over a unit's buffer that starts mid-layout. */
class SlotViewsTest {

    @Test
    void theStackedQkvOfTheParameterBufferIsItsThreeMatricesOneAfterTheOther() {
        MistralConfig config = TinyModels.config();
        ParameterLayout layout = new ParameterLayout(config);
        try (CpuBackend cpu = new CpuBackend(1); ParameterBuffer buffer = new ParameterBuffer(cpu, layout)) {
            float[] all = new float[Math.toIntExact(buffer.flat().size())];
            for (int i = 0; i < all.length; i++) {
                all[i] = i;
            }
            cpu.write(buffer.flat(), all);
            int l = config.numHiddenLayers() - 1, c = config.hiddenSize();
            Tensor stacked = buffer.stacked(Names.q(l), Names.k(l), Names.v(l));
            assertArrayEquals(new int[] {config.stackedQkvDim(), c}, stacked.shape());
            float[] expected = concat(cpu.read(buffer.get(Names.q(l))), cpu.read(buffer.get(Names.k(l))),
                    cpu.read(buffer.get(Names.v(l))));
            assertArrayEquals(expected, cpu.read(stacked));
            assertSame(stacked, buffer.stacked(Names.q(l), Names.k(l), Names.v(l)), "a freeze finds the stack by identity");
        }
    }

    @Test
    void aUnitBufferStacksRelativeToItsStartAndRefusesWhatIsNotAdjacentMatrices() {
        // Slots as a ZeRO-3 unit holds them: layout offsets from 100 on, in a buffer from its element 0.
        List<Slot> slots = List.of(new Slot("norm", new int[] {4}, 100), new Slot("a", new int[] {2, 4}, 104),
                new Slot("b", new int[] {3, 4}, 112), new Slot("c", new int[] {1, 5}, 124), new Slot("d", new int[] {1, 4}, 129));
        try (CpuBackend cpu = new CpuBackend(1); Tensor buffer = cpu.allocate(spin.backend.DType.F32, 40)) {
            float[] values = new float[40];
            for (int i = 0; i < values.length; i++) {
                values[i] = i;
            }
            cpu.write(buffer, values);
            SlotViews views = new SlotViews(buffer, 100, slots, "unit test");
            float[] ab = cpu.read(views.stacked("a", "b"));
            assertArrayEquals(Arrays.copyOfRange(values, 4, 24), ab);
            assertArrayEquals(new int[] {5, 4}, views.stacked("a", "b").shape());
            String gap = assertThrows(IllegalArgumentException.class, () -> views.stacked("a", "d")).getMessage();
            assertTrue(gap.contains("d does not start where the weight before it ends"), gap);
            String columns = assertThrows(IllegalArgumentException.class, () -> views.stacked("b", "c")).getMessage();
            assertTrue(columns.contains("one column count"), columns);
            assertThrows(IllegalArgumentException.class, () -> views.stacked("norm", "a"), "a vector is not stacked");
            String missing = assertThrows(IllegalArgumentException.class, () -> views.stacked("a", "x")).getMessage();
            assertTrue(missing.contains("unit test holds no weight named x"), missing);
        }
    }

    private static float[] concat(float[]... parts) {
        float[] out = new float[Arrays.stream(parts).mapToInt(p -> p.length).sum()];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
