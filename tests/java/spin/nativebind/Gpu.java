package spin.nativebind;

import static org.junit.jupiter.api.Assumptions.abort;

import java.util.concurrent.atomic.AtomicBoolean;

/** For GPU-tier tests: the CUDA runtime when a GPU is usable, else the test is skipped with the reason. */
final class Gpu {
    private static final AtomicBoolean REASON_PRINTED = new AtomicBoolean();

    private Gpu() {}

    static CudaRuntime require() {
        if (NativeLibrary.status() instanceof NativeLibrary.Absent absent) {
            skip("libspin_native " + absent.describe());
        }
        CudaRuntime cuda = CudaRuntime.load();
        try {
            cuda.deviceCount();
        } catch (CudaException e) {
            if (e.reason() != CudaException.Reason.NO_DEVICE) {
                throw e;
            }
            skip(e.nativeMessage());
        }
        return cuda;
    }

    /** For tests of cuBLASLt on the GPU: skipped with the reason when libcublasLt is not installed. */
    static void requireCublasLt() {
        VendorLibraryStatus cublasLt = CublasLt.status();
        if (!cublasLt.found()) {
            skip("cuBLASLt " + cublasLt.detail());
        }
    }

    /** Surefire's console lists skipped tests without the reason, so it is printed once here. */
    private static void skip(String reason) {
        if (!REASON_PRINTED.getAndSet(true)) {
            System.err.println("[spin gpu tests] skipped: " + reason);
        }
        abort("GPU test skipped: " + reason);
    }
}
