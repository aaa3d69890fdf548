package spin.data;

/** A row that does not have the promised shape; the message names the file, the row, the field and the fix. */
public final class InvalidRowException extends IllegalArgumentException {
    private final String problem;

    public InvalidRowException(DataRow row, String field, String problem) {
        super(row.where() + ": " + field + " " + problem + "; fix the row, or pass --skip-invalid to skip invalid rows");
        this.problem = row.where() + ": " + field + " " + problem;
    }

    /** The message without the advice, for a summary of skipped rows. */
    public String problem() {
        return problem;
    }
}
