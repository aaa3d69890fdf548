package spin.backend.cuda;

class EmulatedCudaDeviceTest extends CudaDeviceContract {
    @Override
    String spec() {
        return "cuda-emu:0";
    }
}
