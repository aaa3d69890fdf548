package spin.backend.cuda;

import spin.backend.Operands;
import spin.backend.Tensor;

/** Linear layers as cuBLASLt products (FP32 accumulation). */
final class Gemm implements AutoCloseable {
    private final CudaBackend backend;
    private final CudaDevice device;

    Gemm(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
    }

    void forward(Tensor out, Tensor in, Tensor weight) {
        Operands.requireF32(backend, out, in, weight);
        throw new UnsupportedOperationException("cuBLASLt binding pending");
    }

    void backward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight) {
        Operands.requireF32(backend, dWeight, dOut, in, weight);
        throw new UnsupportedOperationException("cuBLASLt binding pending");
    }

    @Override
    public void close() {}
}
