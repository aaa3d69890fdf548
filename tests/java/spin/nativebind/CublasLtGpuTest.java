package spin.nativebind;

import org.junit.jupiter.api.Tag;

/** The cuBLASLt contract on a real GPU through libcublasLt; skipped with the reason without a GPU or cuBLASLt. */
@Tag("gpu")
class CublasLtGpuTest extends CublasLtContract {
    @Override
    CudaRuntime openRuntime() {
        CudaRuntime cuda = Gpu.require();
        Gpu.requireCublasLt();
        return cuda;
    }
}
