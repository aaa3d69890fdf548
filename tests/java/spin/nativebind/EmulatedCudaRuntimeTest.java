package spin.nativebind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * {@link CudaRuntimeTest}'s questions put to the CUDA emulator's library, which must answer them
 * as a GPU would; plus what only the emulator promises: eight sm_80 devices (one per rank of a
 * one-JVM group), all the host CPU.
 */
class EmulatedCudaRuntimeTest extends CudaRuntimeTest {
    @Override
    CudaRuntime openRuntime() {
        return Emulator.require();
    }

    @Test
    void emulatorHasEightSm80DevicesAndKeepsTheLibrariesApart() {
        CudaRuntime emulated = openRuntime();
        assertEquals(8, emulated.deviceCount());
        for (int d = 0; d < 8; d++) {
            DeviceProperties device = emulated.deviceProperties(d);
            assertTrue(device.name().contains("emulator"), device.name());
            assertEquals(8, device.computeMajor());
        }
        assertTrue(emulated.library().path().endsWith(NativeLibrary.EMULATED_FILE_NAME), emulated.library().describe());
        if (NativeLibrary.status() instanceof NativeLibrary.Loaded) {
            assertTrue(CudaRuntime.load() != emulated, "the real and the emulated runtime are distinct");
        }
    }
}
