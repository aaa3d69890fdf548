package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.text.ChatMessage;

class SpinDatasetWriterTest {
    private static final List<SpinRecord> RECORDS = List.of(
            new SpinRecord(List.of(ChatMessage.user("Grüße 😀"), ChatMessage.assistant("a 'quoted' answer\n")),
                    List.of(ChatMessage.user("Grüße 😀"), ChatMessage.assistant(""))),
            new SpinRecord(List.of(ChatMessage.system("s"), ChatMessage.user("q2"), ChatMessage.assistant("a2")),
                    List.of(ChatMessage.user("q2"), ChatMessage.assistant("g2"))));

    @TempDir
    Path dir;

    @Test
    void everyFormatReadsBackTheRecordsItWrote() throws IOException {
        for (String name : List.of("out.parquet", "out.jsonl", "out.json")) {
            Path file = dir.resolve(name);
            SpinDatasetWriter.write(file, RECORDS);
            assertEquals(RECORDS, DatasetReader.read(List.of(file), SpinRows::parse, false).values(), name);
        }
    }

    @Test
    void parquetKeepsTheReferenceSchema() throws IOException {
        Path file = dir.resolve("x.parquet");
        SpinDatasetWriter.write(file, RECORDS);
        assertEquals(List.of("real STRUCT(\"content\" VARCHAR, \"role\" VARCHAR)[]", "generated STRUCT(\"content\" VARCHAR, \"role\" VARCHAR)[]"),
                ParquetFixtures.schema(file));
        SpinDatasetWriter.write(file, List.of());
        assertEquals(List.of(), DatasetReader.read(List.of(file), SpinRows::parse, false).values(), "an empty split is a valid file");
    }

    @Test
    void rewritingReplacesAndLeavesNoTemporaryFiles() throws IOException {
        Path file = dir.resolve("x.parquet");
        SpinDatasetWriter.write(file, RECORDS);
        SpinDatasetWriter.write(file, RECORDS);
        assertEquals(2, DatasetReader.read(List.of(file), SpinRows::parse, false).rows().size());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList());
        }
        assertThrows(IOException.class, () -> SpinDatasetWriter.write(dir.resolve("x.csv"), RECORDS));
    }

    @Test
    void jsonLinesUseTheGenerationShardLayout() throws IOException {
        Path file = dir.resolve("x.jsonl");
        SpinDatasetWriter.write(file, RECORDS.subList(1, 2));
        assertEquals("{\"real\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q2\"},"
                + "{\"role\":\"assistant\",\"content\":\"a2\"}],\"generated\":[{\"role\":\"user\",\"content\":\"q2\"},"
                + "{\"role\":\"assistant\",\"content\":\"g2\"}]}\n", Files.readString(file));
    }
}
