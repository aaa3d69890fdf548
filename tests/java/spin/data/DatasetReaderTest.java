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

/** Reading and validating rows from JSON Lines, JSON and Parquet, and finding split files. */
class DatasetReaderTest {
    private static final String GOOD = "{\"real\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}],"
            + " \"generated\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"g\"}]}";
    private static final SpinRecord GOOD_RECORD = new SpinRecord(List.of(ChatMessage.user("q"), ChatMessage.assistant("a")),
            List.of(ChatMessage.user("q"), ChatMessage.assistant("g")));

    @TempDir
    Path dir;

    private Path jsonl(String name, String... lines) throws IOException {
        Path file = dir.resolve(name);
        Files.write(file, List.of(lines));
        return file;
    }

    private DatasetReader.Result<SpinRecord> read(Path file, boolean skip) throws IOException {
        return DatasetReader.read(List.of(file), SpinRows::parse, skip);
    }

    private String error(String row) throws IOException {
        Path file = jsonl("bad.jsonl", GOOD, row);
        return assertThrows(InvalidRowException.class, () -> read(file, false)).getMessage();
    }

    @Test
    void jsonLinesJsonArraysAndParquetGiveTheSameRecords() throws IOException {
        Path lines = jsonl("a.jsonl", GOOD, "", GOOD);
        Path array = dir.resolve("a.json");
        Files.writeString(array, "[" + GOOD + ",\n" + GOOD + "]");
        Path parquet = dir.resolve("a.parquet");
        ParquetFixtures.write(parquet, "SELECT [{'content': 'q', 'role': 'user'}, {'content': 'a', 'role': 'assistant'}] AS real, "
                + "[{'content': 'q', 'role': 'user'}, {'content': 'g', 'role': 'assistant'}] AS generated FROM range(2)");
        for (Path file : List.of(lines, array, parquet)) {
            DatasetReader.Result<SpinRecord> r = read(file, false);
            assertEquals(List.of(GOOD_RECORD, GOOD_RECORD), r.values(), file.toString());
            assertEquals(List.of(0L, 1L), r.rows().stream().map(DatasetReader.Indexed::index).toList());
        }
        Path jsonAsLines = dir.resolve("lines.json");
        Files.writeString(jsonAsLines, GOOD + "\n" + GOOD + "\n");
        assertEquals(2, read(jsonAsLines, false).rows().size(), "a .json file of JSON lines, as HF datasets accepts");
    }

    /**
     * Text of 2-, 3- and 4-byte characters spanning the decoder's 64 KiB reads comes back exactly,
     * and a malformed byte far past the first read is placed at its true line and byte offset.
     */
    @Test
    void utf8IsDecodedAcrossReadsAndAMalformedByteIsLocated() throws IOException {
        String text = "\u00e9\u4e2d\ud83d\ude00 ".repeat(20_000); // 10 bytes each: 200 KB per answer
        SpinRecord record = new SpinRecord(List.of(ChatMessage.user("q"), ChatMessage.assistant(text)),
                List.of(ChatMessage.user("q"), ChatMessage.assistant("g")));
        Path file = dir.resolve("wide.jsonl");
        String line = SpinDatasetWriter.toJson(record) + "\n";
        Files.writeString(file, line + line);
        assertEquals(List.of(record, record), read(file, false).values());

        byte[] good = line.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] bad = good.clone();
        // 100,000 bytes into the answer: the first byte of an "\u00e9", well past the first 64 KiB read
        int offset = line.substring(0, line.indexOf(text)).getBytes(java.nio.charset.StandardCharsets.UTF_8).length + 100_000;
        bad[offset] = (byte) 0xFF;
        Files.write(file, good);
        Files.write(file, bad, java.nio.file.StandardOpenOption.APPEND);
        IOException e = assertThrows(IOException.class, () -> read(file, false));
        assertEquals(file + ", line 2: not valid UTF-8 (byte 0xFF at byte offset " + (good.length + offset)
                + "); data files must be UTF-8: save it as UTF-8 or fix that line", e.getMessage());
    }

    @Test
    void errorsNameFileLineAndFieldAndTheFix() throws IOException {
        String file = dir.resolve("bad.jsonl") + ", line 2: ";
        String fix = "; fix the row, or pass --skip-invalid to skip invalid rows";
        assertEquals(file + "generated is missing" + fix, error("{\"real\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}"));
        assertEquals(file + "real is missing" + fix, error("{\"generated\": []}"));
        assertEquals(file + "real[1].content must be a string, got a number (5)" + fix,
                error("{\"real\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": 5}], \"generated\": []}"));
        assertEquals(file + "real[0].role is missing" + fix, error("{\"real\": [{\"content\": \"q\"}], \"generated\": []}"));
        assertEquals(file + "real[0].role is \"human\"; use system, user or assistant" + fix,
                error("{\"real\": [{\"role\": \"human\", \"content\": \"q\"}], \"generated\": []}"));
        assertEquals(file + "real[1].role is \"user\" but must be \"assistant\" (shape: [system,] user, assistant)" + fix,
                error("{\"real\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"user\", \"content\": \"a\"}], \"generated\": []}"));
        assertEquals(file + "generated has 1 message(s) but needs a \"assistant\" turn at position 1 (shape: [system,] user, assistant)" + fix,
                error("{\"real\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}],"
                        + " \"generated\": [{\"role\": \"user\", \"content\": \"q\"}]}"));
        assertEquals(file + "real must be a list of messages, got a string (\"hi\")" + fix, error("{\"real\": \"hi\", \"generated\": []}"));
        assertEquals(file + "the row must be a JSON object, got an array ([1])" + fix, error("[1]"));
    }

    @Test
    void malformedJsonIsAnIoErrorWithTheLine() throws IOException {
        Path file = jsonl("broken.jsonl", GOOD, "{\"real\": [");
        IOException e = assertThrows(IOException.class, () -> read(file, false));
        assertTrue(e.getMessage().startsWith(file + ", line 2: not valid JSON"), e.getMessage());
    }

    @Test
    void parquetErrorsNameTheRow() throws IOException {
        Path file = dir.resolve("bad.parquet");
        ParquetFixtures.write(file, "SELECT [{'content': 'q', 'role': 'user'}, {'content': 'a', 'role': r}] AS real, "
                + "[{'content': 'q', 'role': 'user'}, {'content': 'g', 'role': 'assistant'}] AS generated "
                + "FROM (VALUES (0, 'assistant'), (1, 'bot')) t(i, r) ORDER BY i");
        InvalidRowException e = assertThrows(InvalidRowException.class, () -> read(file, false));
        assertTrue(e.getMessage().startsWith(file + ", row 1 (counting from 0): real[1].role is \"bot\""), e.getMessage());
        Path numbers = dir.resolve("numbers.parquet");
        ParquetFixtures.write(numbers, "SELECT [{'content': 5, 'role': 'user'}] AS real, [] AS generated");
        e = assertThrows(InvalidRowException.class, () -> read(numbers, false));
        assertTrue(e.getMessage().contains("row 0 (counting from 0): real[0].content must be a string, got a number (5)"), e.getMessage());
    }

    @Test
    void skippingCountsInvalidRowsAndKeepsPositions() throws IOException {
        Path file = jsonl("mixed.jsonl", "{\"real\": 1}", GOOD, "{}", GOOD);
        DatasetReader.Result<SpinRecord> r = read(file, true);
        assertEquals(2, r.skipped());
        assertEquals(List.of(1L, 3L), r.rows().stream().map(DatasetReader.Indexed::index).toList());
        assertTrue(r.firstProblem().startsWith(file + ", line 1: real must be a list"), r.firstProblem());
    }

    @Test
    void splitFilesAreFoundByHfNamingHereOrInData() throws IOException {
        Path hub = dir.resolve("hub");
        Files.createDirectories(hub.resolve("data"));
        for (String name : List.of("train_sft-00001-of-00002.parquet", "train_sft-00000-of-00002.parquet",
                "test_sft-00000-of-00001.parquet", "train_gen-00000-of-00001.parquet", "README.md")) {
            Files.writeString(hub.resolve("data").resolve(name), "");
        }
        assertEquals(List.of(hub.resolve("data/train_sft-00000-of-00002.parquet"), hub.resolve("data/train_sft-00001-of-00002.parquet")),
                DatasetFiles.splitFiles(hub, "train_sft"));
        IOException ambiguous = assertThrows(IOException.class, () -> DatasetFiles.splitFiles(hub, "train"));
        assertTrue(ambiguous.getMessage().contains("split \"train\" matches files of [train_gen, train_sft]"), ambiguous.getMessage());
        NoSuchFileException none = assertThrows(NoSuchFileException.class, () -> DatasetFiles.splitFiles(hub, "validation"));
        assertTrue(none.getReason().contains("no files of split \"validation\""), none.getReason());

        Path converted = dir.resolve("converted");
        Files.createDirectories(converted);
        Files.writeString(converted.resolve(SpinDatasetWriter.TRAIN_FILE), "");
        Files.writeString(converted.resolve("train.jsonl"), "");
        Files.writeString(converted.resolve("training_notes.json"), "");
        IOException mixed = assertThrows(IOException.class, () -> DatasetFiles.splitFiles(converted, "train"));
        assertTrue(mixed.getMessage().contains("[train, train_prefs]"), mixed.getMessage());
        Files.delete(converted.resolve("train.jsonl"));
        assertEquals(List.of(converted.resolve(SpinDatasetWriter.TRAIN_FILE)), DatasetFiles.splitFiles(converted, "train"),
                "\"train\" finds train_prefs-*, as in HF datasets, but not training_*");
        assertEquals(List.of(converted.resolve("training_notes.json")), DatasetFiles.splitFiles(converted.resolve("training_notes.json"), "ignored"));
    }
}
