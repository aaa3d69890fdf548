package spin.train;

import spin.backend.Backend;
import spin.backend.Precision;
import spin.backend.cpu.CpuBackend;

/** ZeRO-3 on CPU ranks over InProcessCommunicator, one thread each. */
class ZeroTrainingTest extends ZeroTrainingContract {
    @Override
    Backend openRank(int rank, Precision precision) {
        return new CpuBackend(1);
    }

    @Override
    boolean everyCase() {
        return true;
    }

    @Override
    String oneDevice() {
        return "cpu";
    }
}
