package spin.model;

import spin.backend.Backend;
import spin.backend.cpu.CpuBackend;

/** The PyTorch fixture on the CPU backend, the fp32 reference. */
class PyTorchFixtureTest extends PyTorchFixtureContract {
    @Override
    Backend openBackend() {
        return new CpuBackend(2);
    }
}
