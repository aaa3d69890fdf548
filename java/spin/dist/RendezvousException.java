package spin.dist;

import java.io.IOException;

/**
 * The processes of a run could not be joined: a peer never came, the master could not be reached
 * or did not answer, or the peers disagree about the run. The message says which and what to fix.
 */
public final class RendezvousException extends IOException {
    private static final long serialVersionUID = 1L;

    public RendezvousException(String message) {
        super(message);
    }

    public RendezvousException(String message, Throwable cause) {
        super(message, cause);
    }
}
