package spin.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunDiscoveryTest {
    @TempDir
    Path work;

    private void metrics(String dir, long lastStep) throws IOException {
        Path f = work.resolve(dir).resolve("metrics.jsonl");
        Files.createDirectories(f.getParent());
        Files.writeString(f, "{\"step\": " + lastStep + ", \"loss\": 0.5}\n");
    }

    @Test
    void findsEveryMetricsFileUpToFourLevelsAndOrdersThemAsTheLoopRuns() throws IOException {
        metrics("iter10/train", 10);
        metrics("iter2/train", 2);
        metrics("baseline", 1);
        metrics("sft", 7);
        metrics("iter0/train", 3);
        metrics("ablation/lr/train", 4); // depth 4: the file is ablation/lr/train/metrics.jsonl
        metrics("too/deep/to/find", 5);
        Files.writeString(work.resolve("iter2/train/trainer_state.json"), "{}");

        List<Run> runs = RunDiscovery.find(work);
        assertEquals(List.of("sft", "iter0", "iter2", "iter10", "ablation/lr", "baseline"), runs.stream().map(Run::name).toList());
        assertEquals(List.of(7L, 3L, 2L, 10L, 4L, 1L), runs.stream().map(r -> r.log().lastStep()).toList(), "each run read its own file");
        assertEquals(work.resolve("iter2/train/metrics.jsonl"), runs.get(2).log().file());
    }

    @Test
    void orderIsSftThenIterationsByNumberThenTheRestByName() {
        List<String> names = new ArrayList<>(List.of("iter10", "zeta", "iter1", "sft", "iter2", "alpha", "iter0", "iterate"));
        names.sort(RunDiscovery.ORDER);
        assertEquals(List.of("sft", "iter0", "iter1", "iter2", "iter10", "alpha", "iterate", "zeta"), names);
    }

    @Test
    void aLogRightInTheWorkDirectoryIsNamedAfterIt() throws IOException {
        Path run = work.resolve("iter3");
        Files.createDirectories(run);
        Files.writeString(run.resolve("metrics.jsonl"), "{\"step\": 1, \"loss\": 0.5}\n");
        assertEquals(List.of("iter3"), RunDiscovery.find(run).stream().map(Run::name).toList());
    }

    @Test
    void noMetricsFileIsAnErrorNamingTheDirectory() throws IOException {
        Files.createDirectories(work.resolve("iter0/train"));
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> RunDiscovery.find(work));
        assertEquals(work.toString(), e.getFile());
        assertTrue(e.getReason().contains("no metrics.jsonl"), e.getReason());
    }

    @Test
    void twoFilesForOneRunNameAreRefused() throws IOException {
        metrics("iter0", 1);
        metrics("iter0/train", 2);
        IOException e = assertThrows(IOException.class, () -> RunDiscovery.find(work));
        assertTrue(e.getMessage().contains("are both run iter0"), e.getMessage());
    }
}
