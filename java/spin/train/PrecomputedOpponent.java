package spin.train;

import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.data.LogProbScorer;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.data.SpinRecord;
import spin.model.MistralModel;

/**
 * The reference's opponent log-probs scored once, before the first update, with the starting model
 * (which is the opponent): the same numbers a frozen copy would give at every step, for one forward
 * pass per record instead of one per record and epoch, and without a second model in memory. Kept
 * on the host; a batch's are uploaded to the starting model's backend (the policy's).
 */
final class PrecomputedOpponent implements Opponent {
    private final Backend backend;
    private final float[][] trainScores, testScores;

    private PrecomputedOpponent(Backend backend, float[][] trainScores, float[][] testScores) {
        this.backend = backend;
        this.trainScores = trainScores;
        this.testScores = testScores;
    }

    static PrecomputedOpponent score(MistralModel startingModel, SpinCollator collator, List<SpinRecord> train,
            List<SpinRecord> test, int batchSize) {
        return new PrecomputedOpponent(startingModel.backend(), scoreAll(startingModel, collator, train, batchSize),
                scoreAll(startingModel, collator, test, batchSize));
    }

    private static float[][] scoreAll(MistralModel model, SpinCollator collator, List<SpinRecord> records, int batchSize) {
        float[] real = new float[records.size()], generated = new float[records.size()];
        for (int start = 0; start < records.size(); start += batchSize) {
            List<SpinFeatures> features = new ArrayList<>();
            for (int i = start; i < Math.min(records.size(), start + batchSize); i++) {
                features.add(collator.features(i, records.get(i)));
            }
            LogProbScorer.Scores s = LogProbScorer.score(model, collator.collate(features));
            System.arraycopy(s.real(), 0, real, start, features.size());
            System.arraycopy(s.generated(), 0, generated, start, features.size());
        }
        return new float[][] {real, generated};
    }

    @Override
    public Tensor scores(SpinBatch batch, Split split) {
        float[][] table = split == Split.TRAIN ? trainScores : testScores;
        int b = batch.records();
        float[] realThenGenerated = new float[2 * b];
        for (int r = 0; r < b; r++) {
            int i = Math.toIntExact(batch.recordIndex(r));
            realThenGenerated[r] = table[0][i];
            realThenGenerated[b + r] = table[1][i];
        }
        return backend.fromHost(realThenGenerated, 2 * b);
    }
}
