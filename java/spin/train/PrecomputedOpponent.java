package spin.train;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import spin.backend.Backend;
import spin.backend.Tensor;
import spin.data.LogProbScorer;
import spin.data.SpinBatch;
import spin.data.SpinCollator;
import spin.data.SpinFeatures;
import spin.data.SpinRecord;
import spin.dist.Communicator;
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

    /**
     * Scores every record with {@code startingModel}, in batches of {@code batchSize}. Over a
     * ZeRO-3 group ({@code group} not null; the model a rank's shard) rank r scores batches r,
     * r + ranks, ... (a filler batch where it has none left in a round, so that every rank runs
     * as many passes) and the scores are summed over the group, each record's coming from the one
     * rank that scored it: the same bits one device gets, since a batch's scores do not depend on
     * which rank computes them.
     */
    static PrecomputedOpponent score(MistralModel startingModel, SpinCollator collator, List<SpinRecord> train,
            List<SpinRecord> test, int batchSize, Communicator group) {
        return new PrecomputedOpponent(startingModel.backend(), scoreAll(startingModel, collator, train, batchSize, group),
                scoreAll(startingModel, collator, test, batchSize, group));
    }

    private static float[][] scoreAll(MistralModel model, SpinCollator collator, List<SpinRecord> records, int batchSize,
            Communicator group) {
        int rank = group == null ? 0 : group.rank(), ranks = group == null ? 1 : group.worldSize();
        int n = records.size(), batches = (n + batchSize - 1) / batchSize;
        // Real scores then generated ones; zero where another rank scores the record.
        float[] scores = new float[2 * n];
        for (int j = 0; j * ranks < batches; j++) {
            int index = j * ranks + rank;
            boolean filler = index >= batches;
            int start = (filler ? 0 : index) * batchSize;
            List<SpinFeatures> features = new ArrayList<>();
            for (int i = start; i < Math.min(n, start + batchSize); i++) {
                features.add(collator.features(i, records.get(i)));
            }
            LogProbScorer.Scores s = LogProbScorer.score(model, collator.collate(features));
            if (!filler) {
                System.arraycopy(s.real(), 0, scores, start, features.size());
                System.arraycopy(s.generated(), 0, scores, n + start, features.size());
            }
        }
        if (group != null && n > 0) {
            try (Tensor all = model.backend().fromHost(scores, 2 * n)) {
                group.allReduce(all);
                scores = model.backend().read(all);
            }
        }
        return new float[][] {Arrays.copyOfRange(scores, 0, n), Arrays.copyOfRange(scores, n, 2 * n)};
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
