package spin.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A fixed set of worker threads that split index ranges into chunks.
 *
 * <p>Determinism: chunk boundaries depend only on {@code n} and {@code grain}, never on the thread
 * count, and each chunk is computed by exactly one thread. As long as a body writes only the
 * outputs of its own chunk, results are bit-identical for any thread count and any schedule.
 * Calls from inside a body run sequentially on the calling thread.
 */
public final class CpuParallel implements AutoCloseable {

    /** Body of a parallel loop over the index range [start, end). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> false);

    private final int threads;
    private final ExecutorService workers;

    public CpuParallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.workers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, runnable -> {
            Thread t = new Thread(runnable, "spin-cpu");
            t.setDaemon(true);
            return t;
        });
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code body} over [0, n) in chunks of {@code grain} indices (the last may be shorter). */
    public void forRange(int n, int grain, RangeBody body) {
        if (n <= 0) {
            return;
        }
        int chunkSize = Math.max(1, grain);
        int chunks = (int) ((n + (long) chunkSize - 1) / chunkSize);
        if (chunks == 1 || workers == null || INSIDE.get()) {
            for (int c = 0; c < chunks; c++) {
                body.run(c * chunkSize, Math.min(n, (c + 1) * chunkSize));
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable drain = () -> {
            INSIDE.set(true);
            try {
                for (int c; (c = next.getAndIncrement()) < chunks; ) {
                    body.run(c * chunkSize, (int) Math.min(n, (long) (c + 1) * chunkSize));
                }
            } finally {
                INSIDE.set(false);
            }
        };
        int helpers = Math.min(threads, chunks) - 1;
        List<Future<?>> pending = new ArrayList<>(helpers);
        for (int i = 0; i < helpers; i++) {
            pending.add(workers.submit(drain));
        }
        RuntimeException failure = null;
        try {
            drain.run();
        } catch (RuntimeException e) {
            failure = e;
        }
        for (Future<?> f : pending) {
            try {
                f.get();
            } catch (ExecutionException e) {
                if (failure == null) {
                    failure = e.getCause() instanceof RuntimeException r ? r : new RuntimeException(e.getCause());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for CPU workers", e);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public void close() {
        if (workers != null) {
            workers.shutdownNow();
        }
    }
}
