package spin.model;

import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.DeviceUnderTest;

/** The PyTorch fixture on {@code cuda-emu}: the whole model's CUDA kernels and cuBLASLt calls, emulated. */
class EmulatedPyTorchFixtureTest extends PyTorchFixtureContract {
    @Override
    Backend openBackend(Precision precision) {
        return DeviceUnderTest.openOrSkip("cuda-emu:0", precision);
    }
}
