package spin.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

/** Parquet files written straight with DuckDB SQL, independent of the code under test. */
public final class ParquetFixtures {
    private ParquetFixtures() {}

    /** Runs {@code COPY (select) TO file}: the select builds the rows with SQL literals. */
    public static void write(Path file, String select) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement s = c.createStatement()) {
            s.execute("COPY (" + select + ") TO '" + file.toAbsolutePath() + "' (FORMAT parquet)");
        } catch (SQLException e) {
            throw new IOException(e);
        }
    }

    /** ultrachat_200k's layout: prompt, prompt_id, messages (list of struct {content, role}); one row per conversation. */
    public static void ultrachat(Path file, List<List<String[]>> conversations) throws IOException {
        List<String> rows = new ArrayList<>();
        for (int i = 0; i < conversations.size(); i++) {
            List<String> messages = new ArrayList<>();
            for (String[] m : conversations.get(i)) {
                messages.add("{'content': " + literal(m[1]) + ", 'role': " + literal(m[0]) + "}");
            }
            String prompt = conversations.get(i).isEmpty() ? "''" : literal(conversations.get(i).get(0)[1]);
            rows.add("SELECT " + i + " AS ord, " + prompt + " AS prompt, 'id" + i + "' AS prompt_id, ["
                    + String.join(", ", messages) + "]::STRUCT(content VARCHAR, role VARCHAR)[] AS messages");
        }
        write(file, "SELECT prompt, prompt_id, messages FROM (" + String.join(" UNION ALL ", rows) + ") ORDER BY ord");
    }

    /** The column names and DuckDB types of a parquet file, as "name TYPE" lines. */
    public static List<String> schema(Path file) throws IOException {
        try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("DESCRIBE SELECT * FROM read_parquet('" + file.toAbsolutePath() + "')")) {
            List<String> columns = new ArrayList<>();
            while (rs.next()) {
                columns.add(rs.getString(1) + " " + rs.getString(2));
            }
            return columns;
        } catch (SQLException e) {
            throw new IOException(e);
        }
    }

    static String literal(String s) {
        return "'" + s.replace("'", "''") + "'";
    }
}
