package spin.backend.cuda;

import org.junit.jupiter.api.Tag;

@Tag("gpu")
class GpuCudaDeviceTest extends CudaDeviceContract {
    @Override
    String spec() {
        return "cuda:0";
    }
}
