package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static spin.backend.cpu.Check.assertClose;
import static spin.backend.cpu.Check.gaussian;
import static spin.backend.cpu.Check.numericGradient;
import static spin.backend.cpu.Check.widen;

import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.SpinLossOnHost;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.Tensor;

/** SPIN loss values against closed forms, its metrics against hand computation, its gradient against finite differences. */
class SpinLossTest {
    private static CpuBackend cpu;
    private final long seed = Check.freshSeed();
    private final Random rng = new Random(seed);

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
    }

    private SpinLossStats forward(float[] pr, float[] pg, float[] or, float[] og, float beta, SpinLossType type) {
        try (Tensor a = cpu.fromHost(pr, pr.length); Tensor b = cpu.fromHost(pg, pg.length);
                Tensor c = cpu.fromHost(or, or.length); Tensor d = cpu.fromHost(og, og.length)) {
            return SpinLossOnHost.forward(cpu, a, b, c, d, beta, type);
        }
    }

    @Test
    void policyEqualToOpponentGivesLog2AndHingeOne() {
        float[] real = {-12.5f, -3f}, generated = {-7f, -20f};
        SpinLossStats sigmoid = forward(real, generated, real, generated, 0.1f, SpinLossType.SIGMOID);
        assertEquals(Math.log(2), sigmoid.loss(), 1e-12);
        assertEquals(0, sigmoid.rewardsMargin(), 0);
        assertEquals(0, sigmoid.rewardsAccuracy(), 0);
        assertEquals((-12.5 - 3) / 2, sigmoid.logpsReal(), 1e-12);
        assertEquals((-7 - 20) / 2.0, sigmoid.logpsGenerated(), 1e-12);
        assertEquals(1, forward(real, generated, real, generated, 0.1f, SpinLossType.HINGE).loss(), 1e-12);
    }

    @Test
    void knownMarginsGiveClosedFormLossAndMetrics() {
        // Pair 0: policy gained 2 nats on real, lost 3 on generated -> logits 5, z = beta*5 = 0.5.
        // Pair 1: policy lost 1 on real, gained 1 on generated -> logits -2, z = -0.2.
        float beta = 0.1f;
        float[] or = {-10f, -4f}, og = {-8f, -6f};
        float[] pr = {-8f, -5f}, pg = {-11f, -5f};
        double z0 = beta * 5.0, z1 = beta * -2.0;
        SpinLossStats s = forward(pr, pg, or, og, beta, SpinLossType.SIGMOID);
        assertEquals((Math.log1p(Math.exp(-z0)) + Math.log1p(Math.exp(-z1))) / 2, s.loss(), 1e-7);
        assertEquals(beta * (2.0 + -1.0) / 2, s.rewardsReal(), 1e-7);
        assertEquals(beta * (-3.0 + 1.0) / 2, s.rewardsGenerated(), 1e-7);
        assertEquals(0.5, s.rewardsAccuracy(), 0);
        assertEquals(s.rewardsReal() - s.rewardsGenerated(), s.rewardsMargin(), 1e-12);
        SpinLossStats h = forward(pr, pg, or, og, beta, SpinLossType.HINGE);
        assertEquals(((1 - z0) + (1 - z1)) / 2, h.loss(), 1e-7);
    }

    @Test
    void gradientMatchesFiniteDifferencesForBothLosses() {
        for (SpinLossType type : SpinLossType.values()) {
            int b = 6;
            float beta = 0.7f, lossScale = 0.5f;
            float[] pr = gaussian(rng, b, 3), pg = gaussian(rng, b, 3), or = gaussian(rng, b, 3), og = gaussian(rng, b, 3);
            try (Tensor a = cpu.fromHost(pr, b); Tensor g = cpu.fromHost(pg, b); Tensor c = cpu.fromHost(or, b);
                    Tensor d = cpu.fromHost(og, b); Tensor dr = cpu.fromHost(Check.nanFilled(b), b);
                    Tensor dg = cpu.fromHost(Check.nanFilled(b), b)) {
                cpu.spinLossBackward(dr, dg, a, g, c, d, beta, type, lossScale);
                double[] ord = widen(or), ogd = widen(og), prd = widen(pr), pgd = widen(pg);
                java.util.function.ToDoubleFunction<double[]> lossOfReal = x -> lossScale * (type == SpinLossType.SIGMOID
                        ? Reference64.sigmoidSpinLoss(x, pgd, ord, ogd, beta)
                        : Reference64.hingeSpinLoss(x, pgd, ord, ogd, beta));
                java.util.function.ToDoubleFunction<double[]> lossOfGenerated = x -> lossScale * (type == SpinLossType.SIGMOID
                        ? Reference64.sigmoidSpinLoss(prd, x, ord, ogd, beta)
                        : Reference64.hingeSpinLoss(prd, x, ord, ogd, beta));
                assertClose(type + " dPolicyReal", cpu.read(dr), numericGradient(prd.clone(), lossOfReal), 1e-5, seed);
                assertClose(type + " dPolicyGenerated", cpu.read(dg), numericGradient(pgd.clone(), lossOfGenerated), 1e-5, seed);
                double expectedLoss = type == SpinLossType.SIGMOID
                        ? Reference64.sigmoidSpinLoss(prd, pgd, ord, ogd, beta)
                        : Reference64.hingeSpinLoss(prd, pgd, ord, ogd, beta);
                assertEquals(expectedLoss, SpinLossOnHost.forward(cpu, a, g, c, d, beta, type).loss(), 1e-6 * Math.max(1, expectedLoss));
            }
        }
    }

    @Test
    void largeMarginsDoNotOverflow() {
        SpinLossStats s = forward(new float[] {0f}, new float[] {-5000f}, new float[] {-5000f}, new float[] {0f}, 1f,
                SpinLossType.SIGMOID);
        assertEquals(0, s.loss(), 1e-300);
        SpinLossStats worst = forward(new float[] {-5000f}, new float[] {0f}, new float[] {0f}, new float[] {-5000f}, 1f,
                SpinLossType.SIGMOID);
        assertEquals(10000, worst.loss(), 1e-9);
    }
}
