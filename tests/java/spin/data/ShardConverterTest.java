package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.text.ChatMessage;

class ShardConverterTest {
    @TempDir
    Path dir;

    private static SpinRecord record(String q, String generated) {
        return new SpinRecord(List.of(ChatMessage.user(q), ChatMessage.assistant("real " + q)),
                List.of(ChatMessage.user(q), ChatMessage.assistant(generated)));
    }

    private void shard(String name, SpinRecord... records) throws IOException {
        SpinDatasetWriter.write(dir.resolve("gen").resolve(name), List.of(records));
    }

    @Test
    void shardsAreGatheredInOrderWithGeneratedAnswersLeftStripped() throws IOException {
        shard("loser_0.jsonl", record("a", "  \n answer a "), record("b", "b"));
        shard("loser_1.jsonl", record("c", "\u00a0c"));
        shard("loser_0_test.jsonl", record("t", " t"));
        Files.writeString(dir.resolve("gen/notes.txt"), "not a shard");
        Path out = dir.resolve("out");
        ShardConverter.Report report = ShardConverter.convert(dir.resolve("gen"), out, 0, false);
        assertEquals(new ShardConverter.Report(3, 1, 0, null, 0, 4), report, "shards without source rows are counted");
        assertEquals(List.of(record("a", "answer a "), record("b", "b"), record("c", "c")),
                SpinDatasets.load(out.resolve(SpinDatasetWriter.TRAIN_FILE), "", false).values());
        assertEquals(List.of(record("t", "t")), SpinDatasets.load(out.resolve(SpinDatasetWriter.TEST_FILE), "", false).values());
        ShardConverter.convert(dir.resolve("gen"), out, 1, false);
        assertEquals(2, SpinDatasets.load(out, "train", false).rows().size(), "--num-fracs 1 takes loser_0 only");
    }

    @Test
    void missingShardsAreReportedByNumber() throws IOException {
        shard("loser_0.jsonl", record("a", "x"));
        shard("loser_2.jsonl", record("c", "x"));
        shard("loser_1_test.jsonl", record("t", "x"));
        IOException e = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false));
        assertEquals(dir.resolve("gen") + ": missing generation shards loser_1.jsonl, loser_0_test.jsonl; generate those fractions", e.getMessage());
        e = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 4, false));
        assertTrue(e.getMessage().contains("missing generation shards loser_1.jsonl, loser_3.jsonl, loser_0_test.jsonl; "
                + "generate those fractions or lower --num-fracs"), e.getMessage());
        assertTrue(Files.notExists(dir.resolve("out")), "nothing is written");
        Files.delete(dir.resolve("gen/loser_1_test.jsonl"));
        NoSuchFileException noTest = assertThrows(NoSuchFileException.class,
                () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false));
        assertTrue(noTest.getReason().contains("no loser_{k}_test.jsonl"), noTest.getReason());
    }

    private void positionedShard(String name, long[] sourceRows, SpinRecord... records) throws IOException {
        Files.createDirectories(dir.resolve("gen"));
        GenerationShards.write(dir.resolve("gen").resolve(name), List.of(records), sourceRows);
    }

    @Test
    void twoShardsWithOneNumberAreRefused() throws IOException {
        shard("loser_0.jsonl", record("a", "x"));
        shard("loser_1.jsonl", record("b", "x"));
        shard("loser_0_test.jsonl", record("t", "x"));
        shard("loser_01.jsonl", record("b", "x"));
        IOException twice = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false));
        assertEquals(dir.resolve("gen") + ": loser_01.jsonl and loser_1.jsonl are both shard 1; remove one of them", twice.getMessage());
    }

    /** Overlap is a source row met twice; the same conversation at two source rows is the data's own repetition. */
    @Test
    void overlappingFractionsAreRefusedByTheirSourceRowsAndRepeatedRowsAreKept() throws IOException {
        positionedShard("loser_0.jsonl", new long[] {7, 3}, record("a", "x"), record("b", "x"));
        positionedShard("loser_1.jsonl", new long[] {5, 9}, record("c", "y"), record("a", "other"));
        positionedShard("loser_0_test.jsonl", new long[] {0, 1}, record("t", "x"), record("t", "x"));
        ShardConverter.Report report = ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false);
        assertEquals(new ShardConverter.Report(4, 2, 0, null, 2, 0), report, "a at rows 7 and 9, t at rows 0 and 1");
        assertEquals(4, SpinDatasets.load(dir.resolve("out"), "train", false).rows().size());

        positionedShard("loser_2.jsonl", new long[] {11, 5}, record("d", "y"), record("c", "y"));
        IOException overlap = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false));
        assertTrue(overlap.getMessage().startsWith(dir.resolve("gen/loser_2.jsonl") + ", line 2: source row 5 is also at "
                + dir.resolve("gen/loser_1.jsonl") + ", line 1; two fractions overlap"), overlap.getMessage());
    }

    @Test
    void aSourceRowThatIsNotARowNumberNamesTheLine() throws IOException {
        shard("loser_0_test.jsonl", record("t", "x"));
        Files.writeString(dir.resolve("gen/loser_0.jsonl"), SpinDatasetWriter.toJson(record("a", "x")).replace("}]}", "}],\"source_index\":-2}") + "\n");
        InvalidRowException e = assertThrows(InvalidRowException.class,
                () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false));
        assertTrue(e.getMessage().startsWith(dir.resolve("gen/loser_0.jsonl") + ", line 1: source_index must be a row number >= 0, got -2"),
                e.getMessage());
    }

    @Test
    void invalidRowsNameTheShardAndCanBeSkipped() throws IOException {
        shard("loser_0.jsonl", record("a", "x"));
        Files.writeString(dir.resolve("gen/loser_0.jsonl"), "{\"real\": [], \"generated\": []}\n", java.nio.file.StandardOpenOption.APPEND);
        shard("loser_0_test.jsonl", record("t", "x"));
        InvalidRowException e = assertThrows(InvalidRowException.class,
                () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false));
        assertTrue(e.getMessage().startsWith(dir.resolve("gen/loser_0.jsonl") + ", line 2: real has 0 message(s)"), e.getMessage());
        assertEquals(1, ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, true).skipped());
    }
}
