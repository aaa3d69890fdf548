package spin.model;

import org.junit.jupiter.api.Tag;
import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.DeviceUnderTest;

/** The PyTorch fixture on a real GPU; skipped with the reason where there is none. */
@Tag("gpu")
class GpuPyTorchFixtureTest extends PyTorchFixtureContract {
    @Override
    Backend openBackend(Precision precision) {
        return DeviceUnderTest.openOrSkip("cuda:0", precision);
    }
}
