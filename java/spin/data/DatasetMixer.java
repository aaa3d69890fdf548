package spin.data;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * alignment-handbook's {@code mix_datasets} over local datasets ({@code dataset_mixer} in the
 * reference's config): for every split, a name containing "train" takes the first
 * {@code int(fraction * rows)} rows of each dataset, a name containing "test" takes every row
 * (no subsampling, so evaluations stay comparable); the pieces are concatenated in the order the
 * datasets are given and then shuffled with the seed, if one is given.
 */
public final class DatasetMixer {
    private DatasetMixer() {}

    /** One dataset (a directory of split files, or a single file) and the fraction of its train rows to use. */
    public record Source(Path dataset, double fraction) {
        public Source {
            if (!(fraction >= 0 && fraction <= 1)) {
                throw new IllegalArgumentException("dataset_mixer fraction for " + dataset + " must be in [0, 1], got " + fraction);
            }
        }
    }

    public record Mixed(List<SpinRecord> train, List<SpinRecord> test, int skipped) {}

    public static Mixed mix(List<Source> sources, List<String> splits, OptionalLong shuffleSeed, boolean skipInvalid)
            throws IOException {
        if (sources.isEmpty()) {
            throw new IllegalArgumentException("dataset_mixer names no dataset");
        }
        List<SpinRecord> train = new ArrayList<>(), test = new ArrayList<>();
        int skipped = 0;
        for (String split : splits) {
            boolean isTrain = split.contains("train");
            if (!isTrain && !split.contains("test")) {
                throw new IllegalArgumentException("split \"" + split + "\" is neither a train nor a test split; its name must contain \"train\" or \"test\"");
            }
            for (Source source : sources) {
                DatasetReader.Result<SpinRecord> rows = isTrain ? SpinDatasets.loadNonEmpty(source.dataset(), split, skipInvalid)
                        : SpinDatasets.load(source.dataset(), split, skipInvalid);
                skipped += rows.skipped();
                List<SpinRecord> values = rows.values();
                if (isTrain) {
                    train.addAll(values.subList(0, (int) (source.fraction() * values.size())));
                } else {
                    test.addAll(values);
                }
            }
        }
        if (shuffleSeed.isPresent()) {
            train = DataSelection.shuffled(train, shuffleSeed.getAsLong());
            test = DataSelection.shuffled(test, shuffleSeed.getAsLong());
        }
        return new Mixed(List.copyOf(train), List.copyOf(test), skipped);
    }
}
