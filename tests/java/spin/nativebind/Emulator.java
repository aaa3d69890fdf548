package spin.nativebind;

import static org.junit.jupiter.api.Assumptions.abort;

import java.util.concurrent.atomic.AtomicBoolean;

/** For emulator-tier tests: the CUDA emulator's runtime, else the test is skipped with the reason. */
final class Emulator {
    private static final AtomicBoolean REASON_PRINTED = new AtomicBoolean();

    private Emulator() {}

    static CudaRuntime require() {
        if (NativeLibrary.emulatedStatus() instanceof NativeLibrary.Absent absent) {
            String reason = NativeLibrary.EMULATED_FILE_NAME + " " + absent.describe();
            // Surefire's console lists skipped tests without the reason, so it is printed once here.
            if (!REASON_PRINTED.getAndSet(true)) {
                System.err.println("[spin emulator tests] skipped: " + reason);
            }
            abort("CUDA emulator test skipped: " + reason);
        }
        return CudaRuntime.loadEmulated();
    }
}
