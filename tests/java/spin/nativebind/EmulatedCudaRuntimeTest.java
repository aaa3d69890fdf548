package spin.nativebind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * {@link CudaRuntimeTest}'s questions put to the CUDA emulator's library, which must answer them
 * as a GPU would; plus what only the emulator promises: exactly one device, the host CPU.
 */
class EmulatedCudaRuntimeTest extends CudaRuntimeTest {
    @Override
    CudaRuntime openRuntime() {
        return Emulator.require();
    }

    @Test
    void emulatorHasOneSm80DeviceAndKeepsTheLibrariesApart() {
        CudaRuntime emulated = openRuntime();
        assertEquals(1, emulated.deviceCount());
        DeviceProperties device = emulated.deviceProperties(0);
        assertTrue(device.name().contains("emulator"), device.name());
        assertEquals(8, device.computeMajor());
        assertTrue(emulated.library().path().endsWith(NativeLibrary.EMULATED_FILE_NAME), emulated.library().describe());
        if (NativeLibrary.status() instanceof NativeLibrary.Loaded) {
            assertTrue(CudaRuntime.load() != emulated, "the real and the emulated runtime are distinct");
        }
    }
}
