package spin.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import spin.backend.cpu.CpuParallel;
import spin.backend.cpu.Gemm;

/**
 * Throughput of {@link Gemm#gemm} (calls per second; GFLOP/s = score * 2*M*N*K / 1e9, which
 * tools/bench-gemm.sh prints beside OpenBLAS at the same shapes).
 *
 * <p>A shape is {@code XY:MxKxN}: X and Y are N or T for op(A) and op(B), as in tools/bench-openblas.c.
 * The defaults are 1024^3 and the products of a training step of the tiny test model (B*T = 512 rows,
 * model dim 256, FFN dim 768, vocab 512): forward {@code out = in · W^T} (NT), input gradient
 * {@code dIn = dOut · W} (NN) and weight gradient {@code dW = dOut^T · in} (TN).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 2, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class GemmBenchmark {

    @Param({
        "NN:1024x1024x1024", "NT:1024x1024x1024", "TN:1024x1024x1024",
        "NT:512x256x256", "NT:512x256x768", "NT:512x768x256", "NT:512x256x512",
        "NN:512x256x256", "NN:512x768x256", "NN:512x256x768", "NN:512x512x256",
        "TN:256x512x256", "TN:768x512x256", "TN:256x512x768", "TN:512x512x256",
    })
    public String shape;

    @Param("2")
    public int threads;

    private boolean transA;
    private boolean transB;
    private int m;
    private int n;
    private int k;
    private Arena arena;
    private CpuParallel pool;
    private MemorySegment a;
    private MemorySegment b;
    private MemorySegment c;

    @Setup
    public void setUp() {
        if (!shape.matches("[NT][NT]:\\d+x\\d+x\\d+")) {
            throw new IllegalArgumentException("shape '" + shape + "' is not XY:MxKxN, e.g. NT:512x256x768");
        }
        transA = shape.charAt(0) == 'T';
        transB = shape.charAt(1) == 'T';
        String[] dims = shape.substring(3).split("x");
        m = Integer.parseInt(dims[0]);
        k = Integer.parseInt(dims[1]);
        n = Integer.parseInt(dims[2]);
        arena = Arena.ofShared();
        pool = new CpuParallel(threads);
        SplittableRandom random = new SplittableRandom(42);
        a = randomMatrix((long) m * k, random);
        b = randomMatrix((long) k * n, random);
        c = randomMatrix((long) m * n, random);
    }

    private MemorySegment randomMatrix(long count, SplittableRandom random) {
        MemorySegment s = arena.allocate(count * Float.BYTES, 64);
        for (long i = 0; i < count; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (random.nextDouble() - 0.5));
        }
        return s;
    }

    @Benchmark
    public void gemm() {
        Gemm.gemm(pool, transA, transB, m, n, k, a, 0, transA ? m : k, b, 0, transB ? k : n, c, 0, n, false);
    }

    @TearDown
    public void tearDown() {
        pool.close();
        arena.close();
    }
}
