package spin.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.cpu.CpuBackend;

/** The {@link Communicator} contract for {@link InProcessCommunicator} on CPU ranks. */
class InProcessCommunicatorTest extends CommunicatorContract {
    @Override
    List<Backend> openBackends(int worldSize) {
        List<Backend> backends = new ArrayList<>();
        for (int r = 0; r < worldSize; r++) {
            backends.add(new CpuBackend(1));
        }
        return backends;
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
