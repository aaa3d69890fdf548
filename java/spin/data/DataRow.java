package spin.data;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;

/**
 * One row of a dataset file as JSON, with where it came from.
 *
 * @param indexInFile position among the file's rows, from 0
 * @param line 1-based line of a JSON Lines file, or -1 for other formats
 */
public record DataRow(Path file, long indexInFile, long line, JsonNode value) {
    /** "FILE, line N" for JSON Lines, "FILE, row N (from 0)" otherwise: what an error message should point at. */
    public String where() {
        return line >= 0 ? file + ", line " + line : file + ", row " + indexInFile + " (counting from 0)";
    }
}
