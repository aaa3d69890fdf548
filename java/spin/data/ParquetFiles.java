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
import java.sql.Blob;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.OffsetTime;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
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
                    String column = meta.getColumnLabel(col);
                    row.set(column, json(rows.getObject(col), column, meta.getColumnTypeName(col)));
                }
                sink.accept(new DataRow(file, index++, -1, row));
            }
        } catch (SQLException e) {
            throw new IOException(file + ": cannot read it as Parquet: " + e.getMessage(), e);
        }
    }

    /**
     * A value no JSON type stands for (BLOB, TIMESTAMP, DATE, UUID, ...). It is kept as what it is,
     * not turned into its toString() text, so a field that must be a string refuses it by its type;
     * columns no field reads may hold such values.
     */
    record UnsupportedValue(String type, String column, String columnType) {
        String describe() {
            return "a Parquet " + type + " value (column " + column + " is " + columnType + "; write text as VARCHAR)";
        }
    }

    private static JsonNode json(Object value, String column, String columnType) throws SQLException {
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
                    out.add(json(element, column, columnType));
                }
                yield out;
            }
            case DuckDBStruct struct -> {
                ObjectNode out = NODES.objectNode();
                for (Map.Entry<String, Object> e : struct.getMap().entrySet()) {
                    out.set(e.getKey(), json(e.getValue(), column, columnType));
                }
                yield out;
            }
            case Map<?, ?> map -> {
                ObjectNode out = NODES.objectNode();
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    out.set(String.valueOf(e.getKey()), json(e.getValue(), column, columnType));
                }
                yield out;
            }
            default -> NODES.pojoNode(new UnsupportedValue(duckDbType(value), column, columnType));
        };
    }

    /** The DuckDB type of a value the JDBC driver hands out as one of these classes. */
    private static String duckDbType(Object value) {
        return switch (value) {
            case Blob b -> "BLOB";
            case Timestamp t -> "TIMESTAMP";
            case LocalDateTime t -> "TIMESTAMP";
            case OffsetDateTime t -> "TIMESTAMP WITH TIME ZONE";
            case LocalDate d -> "DATE";
            case java.sql.Date d -> "DATE";
            case LocalTime t -> "TIME";
            case OffsetTime t -> "TIME WITH TIME ZONE";
            case java.sql.Time t -> "TIME";
            case UUID u -> "UUID";
            default -> value.getClass().getSimpleName();
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
