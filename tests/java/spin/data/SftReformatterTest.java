package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.text.ChatMessage;

class SftReformatterTest {
    @TempDir
    Path dir;

    private static String[] turn(String role, String content) {
        return new String[] {role, content};
    }

    @Test
    void ultrachatSplitsBecomeSpinSplitsWithEmptyGeneratedAnswers() throws IOException {
        Path data = dir.resolve("ultrachat");
        ParquetFixtures.ultrachat(data.resolve("data/train_sft-00000-of-00002.parquet"), List.of(
                List.of(turn("user", "Q0"), turn("assistant", "A0"), turn("user", "more?"), turn("assistant", "no"))));
        ParquetFixtures.ultrachat(data.resolve("data/train_sft-00001-of-00002.parquet"), List.of(
                List.of(turn("user", "Q1"), turn("assistant", "A1"))));
        ParquetFixtures.ultrachat(data.resolve("data/test_sft-00000-of-00001.parquet"), List.of(
                List.of(turn("system", "S"), turn("user", "T0"), turn("assistant", "B0"))));
        ParquetFixtures.ultrachat(data.resolve("data/train_gen-00000-of-00001.parquet"), List.of(
                List.of(turn("user", "not this split"), turn("assistant", ""))));
        Path out = dir.resolve("out");

        SftReformatter.Report report = SftReformatter.reformat(data, out, "train_sft", "test_sft", false);
        assertEquals(new SftReformatter.Report(2, 1, 0, null), report);
        List<SpinRecord> train = SpinDatasets.load(out, "train", false).values();
        assertEquals(List.of(
                new SpinRecord(List.of(ChatMessage.user("Q0"), ChatMessage.assistant("A0")), List.of(ChatMessage.user("Q0"), ChatMessage.assistant(""))),
                new SpinRecord(List.of(ChatMessage.user("Q1"), ChatMessage.assistant("A1")), List.of(ChatMessage.user("Q1"), ChatMessage.assistant("")))),
                train);
        assertEquals(List.of(new SpinRecord(List.of(ChatMessage.user("T0"), ChatMessage.assistant("B0")),
                List.of(ChatMessage.user("T0"), ChatMessage.assistant("")))), SpinDatasets.load(out, "test", false).values());

        SftReformatter.reformat(data, out, "train_sft", "test_sft", false);
        assertEquals(2, SpinDatasets.load(out, "train", false).rows().size(), "re-running replaces the files");
    }

    @Test
    void rowsWithoutAUserTurnAndItsAnswerAreRefusedOrSkipped() throws IOException {
        Path data = dir.resolve("sft");
        ParquetFixtures.ultrachat(data.resolve("train_sft-00000-of-00001.parquet"), List.of(
                List.of(turn("user", "ok"), turn("assistant", "fine")),
                List.of(turn("user", "unanswered"), turn("user", "again")),
                List.<String[]>of(turn("assistant", "no question"))));
        ParquetFixtures.ultrachat(data.resolve("test_sft-00000-of-00001.parquet"), List.of(
                List.<String[]>of(turn("user", "lonely"))));
        Path out = dir.resolve("out");
        InvalidRowException e = assertThrows(InvalidRowException.class,
                () -> SftReformatter.reformat(data, out, "train_sft", "test_sft", false));
        assertTrue(e.getMessage().startsWith(data.resolve("train_sft-00000-of-00001.parquet")
                + ", row 1 (counting from 0): messages[1].role is \"user\" but the turn after the first user turn must be \"assistant\""),
                e.getMessage());
        SftReformatter.Report report = SftReformatter.reformat(data, out, "train_sft", "test_sft", true);
        assertEquals(1, report.train());
        assertEquals(0, report.test());
        assertEquals(3, report.skipped());
        assertTrue(report.firstProblem().endsWith("row 1 (counting from 0): messages[1].role is \"user\" but the turn after the first user turn must be \"assistant\""),
                report.firstProblem());
    }
}
