package spin.generate;

import spin.backend.Backend;
import spin.backend.DeviceUnderTest;

class EmulatedGenerationTest extends DeviceGenerationContract {
    @Override
    Backend openDevice() {
        return DeviceUnderTest.openOrSkip("cuda-emu:0");
    }
}
