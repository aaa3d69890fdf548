package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import spin.backend.Backend;
import spin.backend.SpinLossOnHost;
import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;
import spin.backend.Tensor;
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
 * cancelling terms, so they get 1e-4. Device backends compute in fp32 too and are held to the same
 * thresholds.
 *
 * <p>Both lm_head + log-prob paths are checked: unfused (logits kept and compared) and fused in
 * chunks of 5 rows, which do not divide the fixture's rows, so the last chunk is short.
 *
 * <p>Written once and run on every backend: {@link PyTorchFixtureTest} on the CPU,
 * {@link EmulatedPyTorchFixtureTest} on {@code cuda-emu}, {@link GpuPyTorchFixtureTest} on a GPU.
 */
abstract class PyTorchFixtureContract {
    private static final Path DIR = TorchFixtures.DIR;

    private Backend backend;
    private SafetensorsFile fixture;

    /** The backend under test, or an aborted (skipped) test saying why it cannot be opened. */
    abstract Backend openBackend();

    @BeforeEach
    void open() throws IOException {
        backend = openBackend();
        fixture = SafetensorsFile.open(DIR.resolve("fixture.safetensors"));
    }

    @AfterEach
    void close() {
        if (fixture != null) {
            fixture.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    private int[] ints(String name) throws IOException {
        return TorchFixtures.ints(fixture, name);
    }

    private float[] floats(String name) throws IOException {
        return TorchFixtures.floats(fixture, name);
    }

    private static void assertClose(String what, float[] actual, float[] expected, double tolerance) {
        double err = TorchFixtures.relativeError(actual, expected);
        assertTrue(err <= tolerance, what + ": relative error " + err + " > " + tolerance);
    }

    /** {@code model}, set to run its lm_head + log-prob in chunks of that many rows (0: unfused). */
    private static MistralModel chunked(MistralModel model, int logProbChunkRows) {
        model.setLogProbChunkRows(logProbChunkRows);
        return model;
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

    /** Per-row sums of the fixture's logits [N, V], in double. */
    private float[] logitRowSums(int vocab) throws IOException {
        float[] logits = floats("logits");
        float[] sums = new float[logits.length / vocab];
        for (int row = 0; row < sums.length; row++) {
            double sum = 0;
            for (int k = 0; k < vocab; k++) {
                sum += logits[row * vocab + k];
            }
            sums[row] = (float) sum;
        }
        return sums;
    }

    @ParameterizedTest(name = "log-prob chunk rows {0}")
    @ValueSource(ints = {0, 5})
    void logitsLogpsLossAndEveryGradientMatchPyTorch(int logProbChunkRows) throws IOException {
        int b = fixture.tensor("input_ids").intShape()[0], t = fixture.tensor("input_ids").intShape()[1];
        int pairs = b / 2;
        try (MistralModel model = chunked(ModelCheckpoint.load(DIR, backend), logProbChunkRows)) {
            assertTrue(model.config().slidingWindow() > 0 && model.config().slidingWindow() < t, "fixture must exercise the window");
            try (Tensor ids = backend.fromHost(ints("input_ids"), b, t); Tensor mask = backend.fromHost(ints("attention_mask"), b, t);
                    Tensor targets = backend.fromHost(shiftedTargets(ints("labels"), b, t), b, t);
                    Tensor seqLogps = backend.allocate(spin.backend.DType.F32, b)) {
                MistralModel.ForwardState state = model.forward(ids, mask, targets);
                if (logProbChunkRows == 0) {
                    assertClose("logits", backend.read(state.logits()), floats("logits"), 1e-5);
                }
                assertClose("logit row sums", backend.read(state.logitRowSums()), logitRowSums(model.config().vocabSize()), 1e-5);
                backend.rowSumForward(seqLogps, state.tokenLogps());
                float[] logps = backend.read(seqLogps);
                assertClose("per-sequence logps", logps, floats("logps"), 1e-5);

                float beta = floats("beta")[0];
                float[] opponent = floats("opponent_logps");
                try (Tensor policyReal = seqLogps.view(0, pairs); Tensor policyGenerated = seqLogps.view(pairs, pairs);
                        Tensor opponentReal = backend.fromHost(java.util.Arrays.copyOfRange(opponent, 0, pairs), pairs);
                        Tensor opponentGenerated = backend.fromHost(java.util.Arrays.copyOfRange(opponent, pairs, b), pairs);
                        Tensor dSeq = backend.allocate(spin.backend.DType.F32, b);
                        Tensor dTokens = backend.allocate(spin.backend.DType.F32, b, t)) {
                    SpinLossStats sigmoid = SpinLossOnHost.forward(backend, policyReal, policyGenerated, opponentReal, opponentGenerated, beta,
                            SpinLossType.SIGMOID);
                    assertEquals(floats("loss")[0], sigmoid.loss(), 1e-6, "sigmoid SPIN loss");
                    SpinLossStats hinge = SpinLossOnHost.forward(backend, policyReal, policyGenerated, opponentReal, opponentGenerated, beta,
                            SpinLossType.HINGE);
                    assertEquals(floats("loss_hinge")[0], hinge.loss(), 1e-6, "hinge SPIN loss");

                    backend.spinLossBackward(dSeq.view(0, pairs), dSeq.view(pairs, pairs), policyReal, policyGenerated, opponentReal,
                            opponentGenerated, beta, SpinLossType.SIGMOID, 1f);
                    backend.rowSumBackward(dTokens, dSeq);
                    model.backward(state, dTokens);
                }
            }
            int checked = 0;
            for (ParameterLayout.Slot slot : model.parameters().layout().slots()) {
                assertClose("gradient of " + slot.name(), backend.read(model.gradients().get(slot.name())),
                        floats("grad." + slot.name()), 1e-4);
                checked++;
            }
            assertEquals(9 * model.config().numHiddenLayers() + 3, checked, "every parameter gradient is compared");
        }
    }

    @ParameterizedTest(name = "log-prob chunk rows {0}")
    @ValueSource(ints = {0, 5})
    void sftLossMatchesPyTorch(int logProbChunkRows) throws IOException {
        int b = fixture.tensor("input_ids").intShape()[0], t = fixture.tensor("input_ids").intShape()[1];
        int[] targets = shiftedTargets(ints("labels"), b, t);
        try (MistralModel model = chunked(ModelCheckpoint.load(DIR, backend), logProbChunkRows); Tensor ids = backend.fromHost(ints("input_ids"), b, t);
                Tensor mask = backend.fromHost(ints("attention_mask"), b, t); Tensor tg = backend.fromHost(targets, b, t);
                MistralModel.ForwardState state = model.forward(ids, mask, tg)) {
            long scored = java.util.Arrays.stream(targets).filter(x -> x != Backend.IGNORE_INDEX).count();
            double loss = -backend.sum(state.tokenLogps()) / scored;
            assertEquals(floats("sft_loss")[0], loss, 1e-5 * Math.abs(loss), "token-mean cross-entropy");
        }
    }
}
