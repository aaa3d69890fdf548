package spin.backend.cuda;

import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;
import spin.nativebind.CublasLt;

/**
 * Linear layers as cuBLASLt products with fp32 accumulation (on the emulator, its stand-in behind
 * the same calls): out[N,O] = in[N,I] · weight[O,I]^T and its two backward products, on F32 or
 * BF16 activations. One handle per device, whose products all go on the compute stream in order,
 * as the handle requires.
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

    /**
     * in and weight share the compute dtype; out is of it or, from BF16 inputs, F32 (the lm_head's
     * logits; F32 inputs to a BF16 out is no cuBLASLt product).
     */
    void forward(Tensor out, Tensor in, Tensor weight) {
        DType inputs = Operands.requireActivations(backend, in, weight);
        Operands.requireOn(backend, out);
        if (out.dtype() != inputs && out.dtype() != DType.F32) {
            throw new IllegalArgumentException("out " + out + " must be " + inputs + ", as in and weight are, or F32");
        }
        int i = weight.dim(-1), o = Operands.rows(weight, i, "weight"), n = Operands.rows(in, i, "in");
        Operands.requireLength(out, (long) n * o);
        cublas.linearForward(device.compute(), out.memory(), in.memory(), weight.memory(), n, i, o, elementType(inputs),
                elementType(out.dtype()));
    }

    /** dIn, dOut, in and weight share the compute dtype; dWeight is F32, accumulated. */
    void backward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight) {
        DType inputs = Operands.requireActivations(backend, dIn, dOut, in, weight);
        Operands.requireF32(backend, dWeight);
        int i = weight.dim(-1), o = Operands.rows(weight, i, "weight"), n = Operands.rows(in, i, "in");
        Operands.requireLength(dOut, (long) n * o);
        Operands.requireSameSize(dWeight, weight, "weight");
        CublasLt.ElementType type = elementType(inputs);
        if (dIn != null) {
            Operands.requireSameSize(dIn, in, "in");
            cublas.linearBackwardInput(device.compute(), dIn.memory(), dOut.memory(), weight.memory(), n, i, o, type,
                    type);
        }
        cublas.linearBackwardWeight(device.compute(), dWeight.memory(), dOut.memory(), in.memory(), n, i, o, type,
                CublasLt.ElementType.F32);
    }

    private static CublasLt.ElementType elementType(DType dtype) {
        return switch (dtype) {
            case F32 -> CublasLt.ElementType.F32;
            case BF16 -> CublasLt.ElementType.BF16;
            case I32, F64 -> throw new IllegalArgumentException(dtype + " is not a compute dtype");
        };
    }

    @Override
    public void close() {
        cublas.close();
    }
}
