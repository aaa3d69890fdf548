package spin.backend.cuda;

import spin.backend.Operands;
import spin.backend.Tensor;
import spin.nativebind.CublasLt;

/**
 * Linear layers as cuBLASLt products with fp32 accumulation (on the emulator, its stand-in behind
 * the same calls): out[N,O] = in[N,I] · weight[O,I]^T and its two backward products. One handle
 * per device, whose products all go on the compute stream in order, as the handle requires.
 */
final class Gemm implements AutoCloseable {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final CublasLt cublas;

    Gemm(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        this.cublas = CublasLt.create(device.runtime());
    }

    void forward(Tensor out, Tensor in, Tensor weight) {
        Operands.requireF32(backend, out, in, weight);
        int i = weight.dim(-1), o = Operands.rows(weight, i, "weight"), n = Operands.rows(in, i, "in");
        Operands.requireLength(out, (long) n * o);
        cublas.linearForward(device.compute(), out.memory(), in.memory(), weight.memory(), n, i, o,
                CublasLt.ElementType.F32);
    }

    void backward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight) {
        Operands.requireF32(backend, dWeight, dOut, in, weight);
        int i = weight.dim(-1), o = Operands.rows(weight, i, "weight"), n = Operands.rows(in, i, "in");
        Operands.requireLength(dOut, (long) n * o);
        Operands.requireSameSize(dWeight, weight, "weight");
        if (dIn != null) {
            Operands.requireF32(backend, dIn);
            Operands.requireSameSize(dIn, in, "in");
            cublas.linearBackwardInput(device.compute(), dIn.memory(), dOut.memory(), weight.memory(), n, i, o,
                    CublasLt.ElementType.F32);
        }
        cublas.linearBackwardWeight(device.compute(), dWeight.memory(), dOut.memory(), in.memory(), n, i, o,
                CublasLt.ElementType.F32);
    }

    @Override
    public void close() {
        cublas.close();
    }
}
