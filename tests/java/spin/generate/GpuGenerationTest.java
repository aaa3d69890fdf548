package spin.generate;

import org.junit.jupiter.api.Tag;
import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.DeviceUnderTest;

@Tag("gpu")
class GpuGenerationTest extends DeviceGenerationContract {
    @Override
    Backend openDevice(Precision precision) {
        return DeviceUnderTest.openOrSkip("cuda:0", precision);
    }
}
