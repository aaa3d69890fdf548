package spin.model;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.cpu.CpuBackend;

/** The PyTorch fixture on the CPU backend, the fp32 reference. */
class PyTorchFixtureTest extends PyTorchFixtureContract {
    @Override
    Backend openBackend(Precision precision) {
        assumeTrue(precision == Precision.FP32, "the CPU backend computes in fp32 only (the reference)");
        return new CpuBackend(2);
    }
}
