package spin.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import spin.io.AtomicFiles;

/**
 * {@code metrics.jsonl}: one JSON object per logging or evaluation event, with the reference's
 * metric names plus {@code step} and {@code epoch}. Lines are appended whole and flushed; a resume
 * first drops the lines written after the checkpoint it continues from, so the file reads as one
 * uninterrupted run.
 */
final class TrainingLog {
    static final String FILE_NAME = "metrics.jsonl";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;

    TrainingLog(Path outputDir) {
        this.file = outputDir.resolve(FILE_NAME);
    }

    Path file() {
        return file;
    }

    void append(long step, double epoch, Map<String, Double> metrics) throws IOException {
        ObjectNode line = JSON.createObjectNode().put("step", step).put("epoch", epoch);
        metrics.forEach(line::put);
        try {
            Files.createDirectories(file.getParent());
            Files.writeString(file, JSON.writeValueAsString(line) + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
        } catch (IOException e) {
            // a torn last line is dropped by the resume's truncateAfter
            throw new IOException("cannot append to " + file + ": " + (e.getMessage() != null ? e.getMessage() : e), e);
        }
    }

    /** Keeps the lines of steps up to {@code step} (an unreadable tail line from a crash is dropped too). */
    void truncateAfter(long step) throws IOException {
        if (!Files.exists(file)) {
            return;
        }
        StringBuilder kept = new StringBuilder();
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        for (String line : lines) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (IOException e) {
                continue;
            }
            if (node.path("step").asLong(Long.MAX_VALUE) <= step) {
                kept.append(line).append('\n');
            }
        }
        AtomicFiles.writeString(file, kept.toString());
    }

    void delete() throws IOException {
        Files.deleteIfExists(file);
    }
}
