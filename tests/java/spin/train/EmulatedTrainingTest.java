package spin.train;

class EmulatedTrainingTest extends DeviceTrainingContract {
    @Override
    String deviceSpec() {
        return checked("cuda-emu:0");
    }
}
