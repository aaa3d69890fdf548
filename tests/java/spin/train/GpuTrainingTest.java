package spin.train;

import org.junit.jupiter.api.Tag;

@Tag("gpu")
class GpuTrainingTest extends DeviceTrainingContract {
    @Override
    String deviceSpec() {
        return checked("cuda:0");
    }
}
