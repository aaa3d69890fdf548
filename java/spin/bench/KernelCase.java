package spin.bench;

import spin.backend.Backend;
import spin.backend.DType;

/**
 * One kernel benchmark: a stable {@code name} (the JMH parameter and the table's row label, the same
 * at every scale), the sizes it runs at, the work one run does, and how to set it up on a backend.
 *
 * @param shape the sizes as printed in the table (they follow the scale)
 * @param work what one run of the body computes or moves, for the TFLOP/s or GB/s column
 */
public record KernelCase(String name, String shape, Work work, Setup setup) {

    /** Allocates a case's operands on a backend and returns its body. */
    @FunctionalInterface
    public interface Setup {
        Body open(Backend backend);
    }

    /** A prepared case: {@link #run} queues the kernel(s) once; {@link #close} frees the operands. */
    public interface Body extends AutoCloseable {
        void run();

        @Override
        void close();
    }

    /**
     * Floating-point operations (in {@code flopType}: BF16 or F32, for the peak it is held to) or,
     * when {@code flops} is 0, bytes moved (every tensor counted once per read and once per write).
     */
    public record Work(double flops, DType flopType, double bytes) {
        public static Work flops(double flops, DType type) {
            return new Work(flops, type, 0);
        }

        public static Work bytes(double bytes) {
            return new Work(0, null, bytes);
        }

        public boolean computeBound() {
            return flops > 0;
        }
    }
}
