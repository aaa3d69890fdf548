package spin.nativebind;

/**
 * The kernel contract on the CUDA emulator (libspin_native_emu.so: the same kernels built by the
 * host C++ compiler, run as one fiber per CUDA thread), so that CI without a GPU runs it too.
 */
class EmulatedCudaKernelsTest extends CudaKernelsContract {
    @Override
    CudaRuntime openRuntime() {
        return Emulator.require();
    }
}
