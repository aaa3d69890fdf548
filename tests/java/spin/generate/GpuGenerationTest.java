package spin.generate;

import org.junit.jupiter.api.Tag;
import spin.backend.Backend;
import spin.backend.DeviceUnderTest;

@Tag("gpu")
class GpuGenerationTest extends DeviceGenerationContract {
    @Override
    Backend openDevice() {
        return DeviceUnderTest.openOrSkip("cuda:0");
    }
}
