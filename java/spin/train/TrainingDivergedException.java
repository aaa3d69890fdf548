package spin.train;

/** A non-finite loss or gradient norm: training stops at that step and keeps its last good checkpoint. */
public final class TrainingDivergedException extends IllegalStateException {
    public TrainingDivergedException(String message) {
        super(message);
    }
}
