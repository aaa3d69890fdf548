package spin.nativebind;

import org.junit.jupiter.api.Tag;

/** The kernel contract on a real GPU through libspin_native.so; skipped with the reason where there is none. */
@Tag("gpu")
class CudaKernelsTest extends CudaKernelsContract {
    @Override
    CudaRuntime openRuntime() {
        return Gpu.require();
    }
}
