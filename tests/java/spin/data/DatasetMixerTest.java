package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.text.ChatMessage;

class DatasetMixerTest {
    @TempDir
    Path dir;

    private static SpinRecord record(String name) {
        return new SpinRecord(List.of(ChatMessage.user(name), ChatMessage.assistant(name)),
                List.of(ChatMessage.user(name), ChatMessage.assistant("")));
    }

    private Path dataset(String name, int train, int test) throws IOException {
        Path d = dir.resolve(name);
        List<SpinRecord> trainRows = new ArrayList<>(), testRows = new ArrayList<>();
        for (int i = 0; i < train; i++) {
            trainRows.add(record(name + i));
        }
        for (int i = 0; i < test; i++) {
            testRows.add(record(name + "-test" + i));
        }
        SpinDatasetWriter.write(d.resolve(SpinDatasetWriter.TRAIN_FILE), trainRows);
        SpinDatasetWriter.write(d.resolve(SpinDatasetWriter.TEST_FILE), testRows);
        return d;
    }

    @Test
    void trainTakesTheFirstFractionOfEachDatasetAndTestTakesEverything() throws IOException {
        List<DatasetMixer.Source> sources = List.of(new DatasetMixer.Source(dataset("new", 5, 2), 1.0),
                new DatasetMixer.Source(dataset("old", 7, 1), 0.5));
        DatasetMixer.Mixed mixed = DatasetMixer.mix(sources, List.of("train", "test"), OptionalLong.empty(), false);
        // int(0.5 * 7) = 3 rows of "old", in file order, after all 5 of "new".
        assertEquals(List.of(record("new0"), record("new1"), record("new2"), record("new3"), record("new4"),
                record("old0"), record("old1"), record("old2")), mixed.train());
        assertEquals(List.of(record("new-test0"), record("new-test1"), record("old-test0")), mixed.test());
    }

    @Test
    void shufflingWithASeedGivesHfDatasetsOrder() throws IOException {
        List<DatasetMixer.Source> sources = List.of(new DatasetMixer.Source(dataset("d", 10, 1), 1.0));
        DatasetMixer.Mixed mixed = DatasetMixer.mix(sources, List.of("train"), OptionalLong.of(42), false);
        // numpy.random.default_rng(42).permutation(10) = [5 6 0 7 3 2 4 9 1 8]
        assertEquals(List.of(record("d5"), record("d6"), record("d0"), record("d7"), record("d3"), record("d2"),
                record("d4"), record("d9"), record("d1"), record("d8")), mixed.train());
        assertEquals(List.of(), mixed.test());
    }

    @Test
    void badFractionsAndSplitNamesAreRefused() throws IOException {
        Path d = dataset("d", 1, 1);
        assertThrows(IllegalArgumentException.class, () -> new DatasetMixer.Source(d, 1.5));
        assertThrows(IllegalArgumentException.class, () -> new DatasetMixer.Source(d, Double.NaN));
        IllegalArgumentException split = assertThrows(IllegalArgumentException.class,
                () -> DatasetMixer.mix(List.of(new DatasetMixer.Source(d, 1)), List.of("validation"), OptionalLong.empty(), false));
        assertEquals("split \"validation\" is neither a train nor a test split; its name must contain \"train\" or \"test\"", split.getMessage());
    }
}
