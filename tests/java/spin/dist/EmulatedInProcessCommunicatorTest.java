package spin.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DeviceUnderTest;

/**
 * The {@link Communicator} contract for {@link InProcessCommunicator} with each rank on an
 * emulated CUDA device of its own ({@code cuda-emu:r}): the host-staged path on device tensors.
 */
class EmulatedInProcessCommunicatorTest extends CommunicatorContract {
    /** Each rank on {@code cuda-emu:r}; skipped with the reason where the emulator is unavailable. */
    static List<Backend> emulatedDevices(int worldSize) {
        List<Backend> backends = new ArrayList<>();
        try {
            for (int r = 0; r < worldSize; r++) {
                backends.add(DeviceUnderTest.openOrSkip("cuda-emu:" + r));
            }
        } catch (RuntimeException | Error e) {
            backends.forEach(Backend::close);
            throw e;
        }
        return backends;
    }

    @Override
    List<Backend> openBackends(int worldSize) {
        return emulatedDevices(worldSize);
    }

    @Override
    List<? extends Communicator> group(List<Backend> backends, Duration timeout) {
        return InProcessCommunicator.create(backends, timeout);
    }

    @Override
    boolean detectsDisagreement() {
        return true;
    }

    @Override
    boolean hasTimeout() {
        return true;
    }
}
