package spin.report;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** The logs the report reads: JSON Lines, one object per line, blank lines allowed; every problem names the file and the line. */
final class JsonLogLines {
    /** Python's json module writes NaN and Infinity for non-finite floats, so a diverged run's log must still read. */
    private static final ObjectMapper JSON = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();

    @FunctionalInterface
    interface LineHandler {
        void accept(int lineNumber, JsonNode object) throws IOException;
    }

    private JsonLogLines() {}

    static void read(Path file, LineHandler handler) throws IOException {
        int lineNumber = 0;
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                lineNumber++;
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = JSON.readTree(line);
                } catch (JsonProcessingException e) {
                    throw problem(file, lineNumber, "not valid JSON (" + e.getOriginalMessage() + "); every line must be one JSON object:"
                            + " fix or delete the line (a run killed while writing can leave half a line)");
                }
                if (!node.isObject()) {
                    throw problem(file, lineNumber, "expected a JSON object, got " + describe(node) + "; fix or delete the line");
                }
                handler.accept(lineNumber, node);
            }
        }
    }

    static IOException problem(Path file, int lineNumber, String what) {
        return new IOException(file + ", line " + lineNumber + ": " + what);
    }

    /** A number's value (NaN and infinities included); anything else is an error that names the key. */
    static double number(Path file, int lineNumber, String key, JsonNode value) throws IOException {
        if (!value.isNumber()) {
            throw problem(file, lineNumber, "\"" + key + "\" must be a number, got " + describe(value) + "; fix the line");
        }
        return value.doubleValue();
    }

    /** A whole number >= 0 (a step, a count). */
    static long count(Path file, int lineNumber, String key, JsonNode value) throws IOException {
        if (!value.isNumber() || !value.canConvertToExactIntegral() || value.asLong() < 0) {
            throw problem(file, lineNumber, "\"" + key + "\" must be a whole number >= 0, got " + describe(value) + "; fix the line");
        }
        return value.asLong();
    }

    /** "string ("abc")": the JSON type and the text, cut short, so the message shows what was found. */
    static String describe(JsonNode node) {
        String text = node.toString();
        return node.getNodeType().name().toLowerCase(Locale.ROOT) + " (" + (text.length() > 40 ? text.substring(0, 40) + "..." : text) + ")";
    }
}
