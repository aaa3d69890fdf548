package spin.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import spin.io.AtomicFiles;
import spin.text.ChatMessage;

/** Writes SPIN records as .parquet, .jsonl or .json (chosen by the file name), atomically: re-running replaces, never appends. */
public final class SpinDatasetWriter {
    /** The file names of the reference's converted splits. */
    public static final String TRAIN_FILE = "train_prefs-00000-of-00001.parquet";
    public static final String TEST_FILE = "test_prefs-00000-of-00001.parquet";

    private static final ObjectMapper JSON = new ObjectMapper();

    private SpinDatasetWriter() {}

    public static void write(Path file, List<SpinRecord> records) throws IOException {
        String name = file.getFileName().toString();
        if (name.endsWith(".parquet")) {
            ParquetFiles.writeSpinRecords(file, records);
        } else if (name.endsWith(".jsonl")) {
            StringBuilder out = new StringBuilder();
            for (SpinRecord r : records) {
                out.append(toJson(r)).append('\n');
            }
            AtomicFiles.writeString(file, out.toString());
        } else if (name.endsWith(".json")) {
            ArrayNode array = JSON.createArrayNode();
            records.forEach(r -> array.add(node(r)));
            AtomicFiles.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(array) + "\n");
        } else {
            throw new IOException(file + ": unknown data format; use .parquet, .jsonl or .json");
        }
    }

    /** One record as a JSON line: {"real": [{"role", "content"}...], "generated": [...]}, the generation shards' layout. */
    public static String toJson(SpinRecord record) {
        try {
            return JSON.writeValueAsString(node(record));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The record as a JSON object, {"real": [...], "generated": [...]}. */
    static ObjectNode node(SpinRecord record) {
        ObjectNode node = JSON.createObjectNode();
        messages(node.putArray("real"), record.real());
        messages(node.putArray("generated"), record.generated());
        return node;
    }

    private static void messages(ArrayNode array, List<ChatMessage> messages) {
        for (ChatMessage m : messages) {
            array.addObject().put("role", m.role()).put("content", m.content());
        }
    }
}
