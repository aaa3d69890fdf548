package spin.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.duckdb.DuckDBAppender;
import org.duckdb.DuckDBConnection;
import org.duckdb.DuckDBDriver;
import org.duckdb.DuckDBStruct;
import spin.io.AtomicFiles;
import spin.text.ChatMessage;

/**
 * Parquet in and out through DuckDB, embedded (its JDBC jar carries the native library and the
 * parquet extension; extension downloads are switched off). Rows are read as JSON trees so that
 * Parquet, JSON and JSON Lines rows are validated by the same code.
 */
final class ParquetFiles {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private ParquetFiles() {}

    private static Connection open() throws SQLException {
        // Streamed results: a split of ultrachat_200k would otherwise be materialised whole before the first row.
        Properties properties = new Properties();
        properties.setProperty(DuckDBDriver.JDBC_STREAM_RESULTS, "true");
        Connection c = DriverManager.getConnection("jdbc:duckdb:", properties);
        try (Statement s = c.createStatement()) {
            s.execute("SET autoinstall_known_extensions = false");
            s.execute("SET autoload_known_extensions = false");
        }
        return c;
    }

    private static String quoted(Path file) {
        return "'" + file.toAbsolutePath().toString().replace("'", "''") + "'";
    }

    static void read(Path file, DatasetReader.RowSink sink) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString());
        }
        try (Connection c = open(); Statement s = c.createStatement();
                ResultSet rows = s.executeQuery("SELECT * FROM read_parquet(" + quoted(file) + ")")) {
            ResultSetMetaData meta = rows.getMetaData();
            long index = 0;
            while (rows.next()) {
                ObjectNode row = NODES.objectNode();
                for (int col = 1; col <= meta.getColumnCount(); col++) {
                    row.set(meta.getColumnLabel(col), json(rows.getObject(col)));
                }
                sink.accept(new DataRow(file, index++, -1, row));
            }
        } catch (SQLException e) {
            throw new IOException(file + ": cannot read it as Parquet: " + e.getMessage(), e);
        }
    }

    private static JsonNode json(Object value) throws SQLException {
        return switch (value) {
            case null -> NODES.nullNode();
            case String s -> NODES.textNode(s);
            case Boolean b -> NODES.booleanNode(b);
            case Integer i -> NODES.numberNode(i);
            case Long l -> NODES.numberNode(l);
            case Short s -> NODES.numberNode(s);
            case Byte b -> NODES.numberNode(b);
            case Float f -> NODES.numberNode(f);
            case Double d -> NODES.numberNode(d);
            case BigInteger b -> NODES.numberNode(b);
            case BigDecimal d -> NODES.numberNode(d);
            case Array array -> {
                ArrayNode out = NODES.arrayNode();
                for (Object element : (Object[]) array.getArray()) {
                    out.add(json(element));
                }
                yield out;
            }
            case DuckDBStruct struct -> {
                ObjectNode out = NODES.objectNode();
                for (Map.Entry<String, Object> e : struct.getMap().entrySet()) {
                    out.set(e.getKey(), json(e.getValue()));
                }
                yield out;
            }
            case Map<?, ?> map -> {
                ObjectNode out = NODES.objectNode();
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    out.set(String.valueOf(e.getKey()), json(e.getValue()));
                }
                yield out;
            }
            default -> NODES.textNode(value.toString());
        };
    }

    /**
     * Writes records with the reference's schema: columns {@code real} and {@code generated}, each a
     * list of struct {content, role}. The file appears whole or not at all.
     */
    static void writeSpinRecords(Path target, List<SpinRecord> records) throws IOException {
        AtomicFiles.writeThrough(target, temp -> {
            try (Connection c = open(); Statement s = c.createStatement()) {
                s.execute("CREATE TABLE turns (record BIGINT, conversation VARCHAR, turn INTEGER, role VARCHAR, content VARCHAR)");
                try (DuckDBAppender appender = c.unwrap(DuckDBConnection.class).createAppender("main", "turns")) {
                    for (int r = 0; r < records.size(); r++) {
                        append(appender, r, "real", records.get(r).real());
                        append(appender, r, "generated", records.get(r).generated());
                    }
                }
                String turns = "list(struct_pack(content := content, role := role) ORDER BY turn)";
                s.execute("COPY (SELECT " + turns + " FILTER (WHERE conversation = 'real') AS real, "
                        + turns + " FILTER (WHERE conversation = 'generated') AS generated "
                        + "FROM turns GROUP BY record ORDER BY record) TO " + quoted(temp) + " (FORMAT parquet)");
            } catch (SQLException e) {
                throw new IOException(target + ": cannot write Parquet: " + e.getMessage(), e);
            }
        });
    }

    private static void append(DuckDBAppender appender, long record, String conversation, List<ChatMessage> messages)
            throws SQLException {
        for (int t = 0; t < messages.size(); t++) {
            appender.beginRow().append(record).append(conversation).append(t)
                    .append(messages.get(t).role()).append(messages.get(t).content()).endRow();
        }
    }
}
