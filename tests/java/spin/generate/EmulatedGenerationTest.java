package spin.generate;

import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.DeviceUnderTest;

class EmulatedGenerationTest extends DeviceGenerationContract {
    @Override
    Backend openDevice(Precision precision) {
        return DeviceUnderTest.openOrSkip("cuda-emu:0", precision);
    }
}
