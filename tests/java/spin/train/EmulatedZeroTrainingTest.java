package spin.train;

import java.io.IOException;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.DeviceUnderTest;
import spin.backend.Precision;

/**
 * ZeRO-3 on emulated CUDA devices, rank r on {@code cuda-emu:r} from its own thread, over the
 * emulator's NCCL stand-in (NcclCommunicator): the path a GPU node takes, with its collectives on
 * each device's communication stream.
 */
class EmulatedZeroTrainingTest extends ZeroTrainingContract {
    @Override
    Backend openRank(int rank, Precision precision) {
        return DeviceUnderTest.openOrSkip("cuda-emu:" + rank, precision);
    }

    @Override
    boolean everyCase() {
        return false;
    }

    @Override
    String oneDevice() {
        return "cuda-emu:0";
    }

    /** In BF16 the gathered weights are each rank's rounded part, the bits one device's compute copy holds: still bit for bit. */
    @Test
    void bf16RanksTrainBitForBitAsOneRankAccumulating() throws IOException {
        ranksTrainAsOneRank(java.util.Map.of("precision", "bf16"), 2);
    }
}
