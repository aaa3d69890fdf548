package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.backend.cpu.CpuBackend;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.text.ChatMessage;
import spin.text.TestTokenizer;
import spin.text.Tokenizer;

/**
 * The scorer's sums against a direct computation: each row run alone and unpadded, its logits read
 * back, and log softmax(logits[t])[ids[t+1]] summed in double over the response positions t+1.
 */
class LogProbScorerTest {
    @Test
    void batchedPaddedScoresEqualPerRowSumsOverResponseTokens() {
        try (Tokenizer tokenizer = TestTokenizer.load(); CpuBackend cpu = new CpuBackend(2);
                MistralModel model = new MistralModel(MistralConfig.tiny(), cpu)) {
            ModelCheckpoint.initialize(model, 5);
            SpinCollator collator = new SpinCollator(tokenizer, tokenizer.chatTemplate(), tokenizer.padId(), SequenceLimits.REFERENCE);
            List<SpinFeatures> features = new ArrayList<>();
            String[][] texts = {{"What is 2 + 3?", "5", "It is 6."}, {"Name a colour.", "Blue, like the sky.", ""},
                    {"Hi", "Hello! How can I help you today?", "Hi."}};
            for (int i = 0; i < texts.length; i++) {
                features.add(collator.features(i, new SpinRecord(
                        List.of(ChatMessage.user(texts[i][0]), ChatMessage.assistant(texts[i][1])),
                        List.of(ChatMessage.user(texts[i][0]), ChatMessage.assistant(texts[i][2])))));
            }
            LogProbScorer.Scores scores = LogProbScorer.score(model, collator.collate(features));
            for (int i = 0; i < texts.length; i++) {
                double real = direct(model, features.get(i).real(), features.get(i).promptLength());
                double generated = direct(model, features.get(i).generated(), features.get(i).promptLength());
                assertTrue(real < 0 && generated < 0);
                assertEquals(real, scores.real()[i], 1e-4 * Math.abs(real), "real " + i);
                assertEquals(generated, scores.generated()[i], 1e-4 * Math.abs(generated), "generated " + i);
            }
        }
    }

    private static double direct(MistralModel model, TokenRow row, int promptLength) {
        Backend cpu = model.backend();
        int t = row.length(), vocab = model.config().vocabSize();
        int[] ignore = new int[t];
        java.util.Arrays.fill(ignore, Backend.IGNORE_INDEX);
        model.setLogProbChunkRows(0); // unfused, so the forward keeps its logits (the scorer ran fused)
        try (Tensor ids = cpu.fromHost(row.ids(), 1, t); Tensor mask = cpu.fromHost(row.attentionMask(), 1, t);
                Tensor targets = cpu.fromHost(ignore, 1, t); MistralModel.ForwardState state = model.forward(ids, mask, targets)) {
            float[] logits = cpu.read(state.logits());
            double sum = 0;
            for (int pos = promptLength; pos < t; pos++) { // the token at pos is predicted at pos - 1
                int at = (pos - 1) * vocab;
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < vocab; v++) {
                    max = Math.max(max, logits[at + v]);
                }
                double z = 0;
                for (int v = 0; v < vocab; v++) {
                    z += Math.exp(logits[at + v] - max);
                }
                sum += logits[at + row.ids()[pos]] - max - Math.log(z);
            }
            return sum;
        }
    }
}
