package spin.dist;

import java.util.List;

/**
 * A collective could not complete because the group stopped: a rank failed or aborted
 * ({@link #failedRank()} with its error as the {@link #getCause() cause}), or a rank waited past
 * the timeout ({@link #failedRank()} is the rank that waited, {@link #missingRanks()} those that
 * never arrived).
 */
public final class CommunicatorException extends RuntimeException {
    private final int failedRank;
    private final List<Integer> missingRanks;

    public CommunicatorException(String message, int failedRank, List<Integer> missingRanks, Throwable cause) {
        super(message, cause);
        this.failedRank = failedRank;
        this.missingRanks = List.copyOf(missingRanks);
    }

    /** The rank whose failure or timeout stopped the group. */
    public int failedRank() {
        return failedRank;
    }

    /** The ranks that never arrived, when a timeout stopped the group; empty otherwise. */
    public List<Integer> missingRanks() {
        return missingRanks;
    }
}
