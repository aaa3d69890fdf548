package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.Tensor;

/** F32 <-> BF16 casts: kernels/cast.cu. */
final class Casts {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle toBf16;
    private final MethodHandle toF32;

    Casts(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        toBf16 = device.bind("spin_cast_f32_to_bf16", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
        toF32 = device.bind("spin_cast_bf16_to_f32", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
    }

    void cast(Tensor out, Tensor in) {
        Operands.requireOn(backend, out, in);
        Operands.requireSameSize(out, in, "in");
        if (in.dtype() == out.dtype()) {
            backend.copy(out, in);
            return;
        }
        var stream = device.compute().handle();
        long n = in.size();
        if (in.dtype() == DType.F32 && out.dtype() == DType.BF16) {
            device.launch("spin_cast_f32_to_bf16", () -> (int) toBf16.invokeExact(stream, out.memory(), in.memory(), n));
        } else if (in.dtype() == DType.BF16 && out.dtype() == DType.F32) {
            device.launch("spin_cast_bf16_to_f32", () -> (int) toF32.invokeExact(stream, out.memory(), in.memory(), n));
        } else {
            throw new IllegalArgumentException("cast supports F32 <-> BF16, not " + in + " -> " + out);
        }
    }
}
