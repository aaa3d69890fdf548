package spin.backend;

import org.junit.jupiter.api.Tag;

/** The Backend contract on a real GPU ({@code cuda:0}); skipped with the reason where there is none. */
@Tag("gpu")
class GpuBackendTest extends BackendContract {
    @Override
    Backend openDevice() {
        return DeviceUnderTest.openOrSkip("cuda:0");
    }
}
