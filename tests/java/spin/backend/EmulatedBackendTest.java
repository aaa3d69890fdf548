package spin.backend;

/**
 * The Backend contract on {@code cuda-emu}: every CUDA kernel and the cuBLASLt calling code, run by
 * the CUDA emulator on the host, against the CPU backend. Skipped with the reason where the
 * emulator library was not built.
 */
class EmulatedBackendTest extends BackendContract {
    @Override
    Backend openDevice() {
        return DeviceUnderTest.openOrSkip("cuda-emu:0");
    }
}
