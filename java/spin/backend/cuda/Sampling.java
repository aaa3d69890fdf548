package spin.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import spin.backend.DType;
import spin.backend.Operands;
import spin.backend.SamplingRule;
import spin.backend.Tensor;

/** Token choice on the device, greedy and sampled: kernels/sampling.cu. */
final class Sampling {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final MethodHandle argmax;
    private final MethodHandle sampleScratchBytes;
    private final MethodHandle sample;

    Sampling(CudaBackend backend, CudaDevice device) {
        this.backend = backend;
        this.device = device;
        argmax = device.bind("spin_argmax_rows", ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT);
        sampleScratchBytes = device.bind("spin_sample_rows_scratch_bytes", JAVA_INT, JAVA_INT, ADDRESS);
        sample = device.bind("spin_sample_rows", ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_DOUBLE, JAVA_DOUBLE, JAVA_INT, JAVA_DOUBLE);
    }

    void argmax(Tensor out, Tensor logits) {
        Operands.requireF32(backend, logits);
        Operands.requireDtype(backend, out, DType.I32, "out");
        int v = logits.dim(-1), s = Operands.rows(logits, v, "logits");
        Operands.requireLength(out, s);
        var stream = device.compute().handle();
        device.launch("spin_argmax_rows", () -> (int) argmax.invokeExact(stream, out.memory(), logits.memory(), s, v));
    }

    void sample(Tensor out, Tensor logits, SamplingRule rule, Tensor streams, Tensor draws, Tensor history,
            Tensor historyLengths) {
        int l = Operands.sampleRowsHistoryLength(backend, out, logits, rule, streams, draws, history, historyLengths);
        int v = logits.dim(-1), s = Math.toIntExact(out.size());
        long bytes;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(JAVA_LONG);
            device.launch("spin_sample_rows_scratch_bytes", () -> (int) sampleScratchBytes.invokeExact(s, v, result));
            bytes = result.get(JAVA_LONG, 0);
        }
        MemorySegment st = memory(rule.isGreedy() ? null : streams), dr = memory(rule.isGreedy() ? null : draws);
        MemorySegment h = memory(l > 0 ? history : null), lengths = memory(rule.penalizesRepetition() ? historyLengths : null);
        try (Scratch scratch = new Scratch(device, bytes)) {
            var stream = device.compute().handle();
            device.launch("spin_sample_rows", () -> (int) sample.invokeExact(stream, out.memory(), scratch.memory(),
                    logits.memory(), s, v, st, dr, h, lengths, l, rule.temperature(), rule.topP(), rule.topK(),
                    rule.repetitionPenalty()));
        }
    }

    /** The tensor's device pointer, or NULL for an operand the rule does not read. */
    private static MemorySegment memory(Tensor t) {
        return t == null ? MemorySegment.NULL : t.memory();
    }
}
