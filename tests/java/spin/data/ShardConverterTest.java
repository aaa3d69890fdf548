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
        ShardConverter.Report report = ShardConverter.convert(dir.resolve("gen"), out, 0, false, false);
        assertEquals(new ShardConverter.Report(3, 1, 0, null), report);
        assertEquals(List.of(record("a", "answer a "), record("b", "b"), record("c", "c")),
                SpinDatasets.load(out.resolve(SpinDatasetWriter.TRAIN_FILE), "", false).values());
        assertEquals(List.of(record("t", "t")), SpinDatasets.load(out.resolve(SpinDatasetWriter.TEST_FILE), "", false).values());
        ShardConverter.convert(dir.resolve("gen"), out, 1, false, false);
        assertEquals(2, SpinDatasets.load(out, "train", false).rows().size(), "--num-fracs 1 takes loser_0 only");
    }

    @Test
    void missingShardsAreReportedByNumber() throws IOException {
        shard("loser_0.jsonl", record("a", "x"));
        shard("loser_2.jsonl", record("c", "x"));
        shard("loser_1_test.jsonl", record("t", "x"));
        IOException e = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false, false));
        assertEquals(dir.resolve("gen") + ": missing generation shards loser_1.jsonl, loser_0_test.jsonl; generate those fractions", e.getMessage());
        e = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 4, false, false));
        assertTrue(e.getMessage().contains("missing generation shards loser_1.jsonl, loser_3.jsonl, loser_0_test.jsonl; "
                + "generate those fractions or lower --num-fracs"), e.getMessage());
        assertTrue(Files.notExists(dir.resolve("out")), "nothing is written");
        Files.delete(dir.resolve("gen/loser_1_test.jsonl"));
        NoSuchFileException noTest = assertThrows(NoSuchFileException.class,
                () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false, false));
        assertTrue(noTest.getReason().contains("no loser_{k}_test.jsonl"), noTest.getReason());
    }

    @Test
    void duplicateShardsAndDuplicateRecordsAreRefused() throws IOException {
        shard("loser_0.jsonl", record("a", "x"));
        shard("loser_1.jsonl", record("b", "x"));
        shard("loser_0_test.jsonl", record("t", "x"));
        shard("loser_01.jsonl", record("b", "x"));
        IOException twice = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false, false));
        assertEquals(dir.resolve("gen") + ": loser_01.jsonl and loser_1.jsonl are both shard 1; remove one of them", twice.getMessage());
        Files.delete(dir.resolve("gen/loser_01.jsonl"));

        shard("loser_2.jsonl", record("c", "y"), record("a", "other"));
        IOException duplicate = assertThrows(IOException.class, () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false, false));
        assertTrue(duplicate.getMessage().startsWith(dir.resolve("gen/loser_2.jsonl") + ", line 2: duplicate of "
                + dir.resolve("gen/loser_0.jsonl") + ", line 1 (the same real conversation)"), duplicate.getMessage());
        assertTrue(duplicate.getMessage().endsWith("pass --allow-duplicates if the source data repeats it"), duplicate.getMessage());
        assertEquals(4, ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, true, false).train());
    }

    @Test
    void invalidRowsNameTheShardAndCanBeSkipped() throws IOException {
        shard("loser_0.jsonl", record("a", "x"));
        Files.writeString(dir.resolve("gen/loser_0.jsonl"), "{\"real\": [], \"generated\": []}\n", java.nio.file.StandardOpenOption.APPEND);
        shard("loser_0_test.jsonl", record("t", "x"));
        InvalidRowException e = assertThrows(InvalidRowException.class,
                () -> ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false, false));
        assertTrue(e.getMessage().startsWith(dir.resolve("gen/loser_0.jsonl") + ", line 2: real has 0 message(s)"), e.getMessage());
        assertEquals(1, ShardConverter.convert(dir.resolve("gen"), dir.resolve("out"), 0, false, true).skipped());
    }
}
