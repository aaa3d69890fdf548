package spin.data;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Streams the rows of a JSON Lines file, or of a JSON file holding an array of rows (a .json file
 * that does not start with '[' is read as JSON Lines, as HF datasets does). Text must be UTF-8; a
 * malformed byte is reported with its line and byte offset.
 */
final class JsonRows {
    private static final ObjectMapper JSON = new ObjectMapper();

    private JsonRows() {}

    static void read(Path file, DatasetReader.RowSink sink) throws IOException {
        try (BufferedReader in = new BufferedReader(new Utf8Reader(Files.newInputStream(file)))) {
            if (file.getFileName().toString().endsWith(".json") && startsWithArray(in)) {
                readArray(file, in, sink);
            } else {
                readLines(file, in, sink);
            }
        } catch (Utf8Reader.MalformedException e) {
            throw new IOException(file + ", " + e.getMessage() + "; data files must be UTF-8: save it as UTF-8 or fix that line", e);
        }
    }

    private static boolean startsWithArray(BufferedReader in) throws IOException {
        in.mark(1 << 16);
        int c;
        do {
            c = in.read();
        } while (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\uFEFF');
        in.reset();
        return c == '[';
    }

    private static void readLines(Path file, BufferedReader in, DatasetReader.RowSink sink) throws IOException {
        long lineNumber = 0, index = 0;
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            lineNumber++;
            if (line.isBlank()) {
                continue;
            }
            JsonNode value;
            try {
                value = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                throw new IOException(file + ", line " + lineNumber + ": not valid JSON (" + e.getOriginalMessage()
                        + "); every line of a .jsonl file must be one JSON object");
            }
            sink.accept(new DataRow(file, index++, lineNumber, value));
        }
    }

    private static void readArray(Path file, BufferedReader in, DatasetReader.RowSink sink) throws IOException {
        long index = 0;
        try (JsonParser parser = JSON.getFactory().createParser(in)) {
            parser.nextToken(); // START_ARRAY
            for (JsonToken t = parser.nextToken(); t != JsonToken.END_ARRAY; t = parser.nextToken()) {
                if (t == null) {
                    throw new IOException(file + ": the JSON array is not closed");
                }
                JsonNode value = parser.readValueAsTree();
                sink.accept(new DataRow(file, index++, -1, value));
            }
            if (parser.nextToken() != null) {
                throw new IOException(file + ": text follows the JSON array");
            }
        } catch (JsonProcessingException e) {
            throw new IOException(file + ", row " + index + " (counting from 0): not valid JSON (" + e.getOriginalMessage() + ")");
        }
    }
}
