package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/** Row scatter, the KV-cache write of new tokens' keys and values (F32 or BF16): kernels/scatter.cu. */
final class ScatterRows {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle scatter;

    ScatterRows(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        scatter = device.bind("spin_scatter_rows", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT);
    }

    void scatter(Tensor dst, Tensor src, Tensor rows) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, dst, src));
        Operands.requireDtype(backend, rows, DType.I32, "rows");
        int m = Math.toIntExact(rows.size());
        int w = m == 0 ? 0 : Math.toIntExact(src.size() / m);
        Operands.requireLength(src, (long) m * w);
        if (w == 0) {
            return;
        }
        int r = Operands.rows(dst, w, "dst");
        var stream = device.compute().handle();
        device.launch("spin_scatter_rows", () -> (int) scatter.invokeExact(stream, dtype, dst.memory(), src.memory(),
                rows.memory(), m, w, r));
    }
}
