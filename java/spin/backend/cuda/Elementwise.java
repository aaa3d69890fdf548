package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.invoke.MethodHandle;
import spin.backend.Operands;
import spin.backend.Tensor;

/**
 * add and accumulate (on F32 or BF16 activations), scale and fill (F32: gradients) on the device:
 * kernels/elementwise.cu.
 */
final class Elementwise {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle add;
    private final MethodHandle scale;
    private final MethodHandle scaleByDevice;
    private final MethodHandle fill;

    Elementwise(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        add = device.bind("spin_add", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
        scale = device.bind("spin_scale", ADDRESS, ADDRESS, JAVA_FLOAT, JAVA_LONG);
        scaleByDevice = device.bind("spin_scale_by_device", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
        fill = device.bind("spin_fill", ADDRESS, ADDRESS, JAVA_FLOAT, JAVA_LONG);
    }

    void add(Tensor out, Tensor a, Tensor b) {
        int dtype = NativeDType.of(Operands.requireActivations(backend, out, a, b));
        Operands.requireSameSize(out, a, "a");
        Operands.requireSameSize(out, b, "b");
        var stream = device.compute().handle();
        long n = out.size();
        device.launch("spin_add", () -> (int) add.invokeExact(stream, dtype, out.memory(), a.memory(), b.memory(), n));
    }

    void scale(Tensor dst, float factor) {
        Operands.requireF32(backend, dst);
        var stream = device.compute().handle();
        long n = dst.size();
        device.launch("spin_scale", () -> (int) scale.invokeExact(stream, dst.memory(), factor, n));
    }

    /** dst *= factor[0], the factor read on the device. */
    void scaleByDevice(Tensor dst, Tensor factor) {
        Operands.requireF32(backend, dst, factor);
        Operands.requireLength(factor, 1);
        var stream = device.compute().handle();
        long n = dst.size();
        device.launch("spin_scale_by_device",
                () -> (int) scaleByDevice.invokeExact(stream, dst.memory(), factor.memory(), n));
    }

    void fill(Tensor dst, float value) {
        Operands.requireF32(backend, dst);
        var stream = device.compute().handle();
        long n = dst.size();
        device.launch("spin_fill", () -> (int) fill.invokeExact(stream, dst.memory(), value, n));
    }
}
