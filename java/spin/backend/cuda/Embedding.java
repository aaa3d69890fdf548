package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/**
 * Token embedding on F32 or BF16 activations (the table and out alike) and its deterministic
 * (atomic-free) backward into an F32 dTable: kernels/embedding.cu.
 */
final class Embedding {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle forward;
    private final MethodHandle backward;

    Embedding(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        forward = device.bind("spin_embedding_forward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                JAVA_INT, JAVA_INT);
        backward = device.bind("spin_embedding_backward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                JAVA_INT, JAVA_INT);
    }

    void forward(Tensor out, Tensor ids, Tensor table) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, table));
        Operands.requireDtype(backend, ids, DType.I32, "ids");
        int c = table.dim(-1), v = Operands.rows(table, c, "table"), n = Math.toIntExact(ids.size());
        Operands.requireLength(out, (long) n * c);
        var stream = device.compute().handle();
        device.launch("spin_embedding_forward",
                () -> (int) forward.invokeExact(stream, dtype, out.memory(), ids.memory(), table.memory(), n, c, v));
    }

    void backward(Tensor dTable, Tensor ids, Tensor dOut) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, dOut));
        Operands.requireF32(backend, dTable);
        Operands.requireDtype(backend, ids, DType.I32, "ids");
        int c = dTable.dim(-1), v = Operands.rows(dTable, c, "dTable"), n = Math.toIntExact(ids.size());
        Operands.requireLength(dOut, (long) n * c);
        var stream = device.compute().handle();
        device.launch("spin_embedding_backward",
                () -> (int) backward.invokeExact(stream, dtype, dTable.memory(), ids.memory(), dOut.memory(), n, c, v));
    }
}
