package spin.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class DeviceSpecTest {
    @Test
    void parsesEveryForm() {
        assertEquals(DeviceSpec.CPU, DeviceSpec.parse("cpu"));
        assertEquals(new DeviceSpec(DeviceSpec.Kind.CUDA, 0), DeviceSpec.parse("cuda"));
        assertEquals(new DeviceSpec(DeviceSpec.Kind.CUDA, 3), DeviceSpec.parse(" CUDA:3 "));
        assertEquals(new DeviceSpec(DeviceSpec.Kind.CUDA_EMU, 1), DeviceSpec.parse("cuda-emu:1"));
        assertEquals("cuda-emu:0", DeviceSpec.parse("cuda-emu").toString());
        assertEquals("cpu", DeviceSpec.parse("cpu").toString());
    }

    @Test
    void aBadSpecListsTheForms() {
        for (String bad : new String[] {"gpu", "cuda:", "cuda:-1", "cpu:1", "cuda:x", ""}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse(bad), bad);
            assertTrue(e.getMessage().contains("use cpu, cuda, cuda:N (GPU N) or cuda-emu[:N]"), e.getMessage());
        }
    }
}
