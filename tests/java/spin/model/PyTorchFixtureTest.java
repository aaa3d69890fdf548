package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.io.SafetensorsFile;

/**
 * Tier 3: the Java model against fixtures written by tools/mistral_reference.py, an independent
 * PyTorch implementation of HF Mistral computed in float64 (GQA, a sliding window of 5 over
 * sequences of 12, key-mask holes and right padding).
 *
 * <p>Thresholds (relative L2 error against float64): the Java path is fp32 throughout, so each op
 * adds ~1e-7 relative error and reductions over at most a few hundred terms grow it to ~1e-6;
 * logits and log-probs must stay within 1e-5. Gradients pass through two layers of backward
 * (softmax, normalisation and the loss's sigmoid) and the smallest parameter gradients are sums of
 * cancelling terms, so they get 1e-4.
 */
class PyTorchFixtureTest {
    private static final Path DIR = TorchFixtures.DIR;

    private static CpuBackend cpu;
    private static SafetensorsFile fixture;

    @BeforeAll
    static void open() throws IOException {
        cpu = new CpuBackend(2);
        fixture = SafetensorsFile.open(DIR.resolve("fixture.safetensors"));
    }

    @AfterAll
    static void close() {
        fixture.close();
        cpu.close();
    }

    private static int[] ints(String name) throws IOException {
        return TorchFixtures.ints(fixture, name);
    }

    private static float[] floats(String name) throws IOException {
        return TorchFixtures.floats(fixture, name);
    }

    private static void assertClose(String what, float[] actual, float[] expected, double tolerance) {
        double err = TorchFixtures.relativeError(actual, expected);
        assertTrue(err <= tolerance, what + ": relative error " + err + " > " + tolerance);
    }

    /** HF's shift: the target at position t is the label of position t+1. */
    private static int[] shiftedTargets(int[] labels, int b, int t) {
        int[] targets = new int[b * t];
        for (int r = 0; r < b; r++) {
            for (int i = 0; i < t; i++) {
                targets[r * t + i] = i + 1 < t ? labels[r * t + i + 1] : Backend.IGNORE_INDEX;
            }
        }
        return targets;
    }

    @Test
    void logitsLogpsLossAndEveryGradientMatchPyTorch() throws IOException {
        int b = fixture.tensor("input_ids").intShape()[0], t = fixture.tensor("input_ids").intShape()[1];
        int pairs = b / 2;
        try (MistralModel model = ModelCheckpoint.load(DIR, cpu)) {
            assertTrue(model.config().slidingWindow() > 0 && model.config().slidingWindow() < t, "fixture must exercise the window");
            try (Tensor ids = cpu.fromHost(ints("input_ids"), b, t); Tensor mask = cpu.fromHost(ints("attention_mask"), b, t);
                    Tensor targets = cpu.fromHost(shiftedTargets(ints("labels"), b, t), b, t);
                    Tensor seqLogps = cpu.allocate(spin.backend.DType.F32, b)) {
                MistralModel.ForwardState state = model.forward(ids, mask, targets);
                assertClose("logits", cpu.read(state.logits()), floats("logits"), 1e-5);
                cpu.rowSumForward(seqLogps, state.tokenLogps());
                float[] logps = cpu.read(seqLogps);
                assertClose("per-sequence logps", logps, floats("logps"), 1e-5);

                float beta = floats("beta")[0];
                float[] opponent = floats("opponent_logps");
                try (Tensor policyReal = seqLogps.view(0, pairs); Tensor policyGenerated = seqLogps.view(pairs, pairs);
                        Tensor opponentReal = cpu.fromHost(java.util.Arrays.copyOfRange(opponent, 0, pairs), pairs);
                        Tensor opponentGenerated = cpu.fromHost(java.util.Arrays.copyOfRange(opponent, pairs, b), pairs);
                        Tensor dSeq = cpu.allocate(spin.backend.DType.F32, b);
                        Tensor dTokens = cpu.allocate(spin.backend.DType.F32, b, t)) {
                    SpinLossStats sigmoid = cpu.spinLossForward(policyReal, policyGenerated, opponentReal, opponentGenerated, beta,
                            SpinLossType.SIGMOID);
                    assertEquals(floats("loss")[0], sigmoid.loss(), 1e-6, "sigmoid SPIN loss");
                    SpinLossStats hinge = cpu.spinLossForward(policyReal, policyGenerated, opponentReal, opponentGenerated, beta,
                            SpinLossType.HINGE);
                    assertEquals(floats("loss_hinge")[0], hinge.loss(), 1e-6, "hinge SPIN loss");

                    cpu.spinLossBackward(dSeq.view(0, pairs), dSeq.view(pairs, pairs), policyReal, policyGenerated, opponentReal,
                            opponentGenerated, beta, SpinLossType.SIGMOID, 1f);
                    cpu.rowSumBackward(dTokens, dSeq);
                    model.backward(state, dTokens);
                }
            }
            int checked = 0;
            for (ParameterLayout.Slot slot : model.parameters().layout().slots()) {
                assertClose("gradient of " + slot.name(), cpu.read(model.gradients().get(slot.name())),
                        floats("grad." + slot.name()), 1e-4);
                checked++;
            }
            assertEquals(9 * model.config().numHiddenLayers() + 3, checked, "every parameter gradient is compared");
        }
    }

    @Test
    void sftLossMatchesPyTorch() throws IOException {
        int b = fixture.tensor("input_ids").intShape()[0], t = fixture.tensor("input_ids").intShape()[1];
        int[] targets = shiftedTargets(ints("labels"), b, t);
        try (MistralModel model = ModelCheckpoint.load(DIR, cpu); Tensor ids = cpu.fromHost(ints("input_ids"), b, t);
                Tensor mask = cpu.fromHost(ints("attention_mask"), b, t); Tensor tg = cpu.fromHost(targets, b, t);
                MistralModel.ForwardState state = model.forward(ids, mask, tg)) {
            long scored = java.util.Arrays.stream(targets).filter(x -> x != Backend.IGNORE_INDEX).count();
            double loss = -cpu.sum(state.tokenLogps()) / scored;
            assertEquals(floats("sft_loss")[0], loss, 1e-5 * Math.abs(loss), "token-mean cross-entropy");
        }
    }
}
