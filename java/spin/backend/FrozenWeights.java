package spin.backend;

/**
 * A promise, made by {@link Backend#freezeWeights}, that some weight matrices keep their values
 * until {@link #close()}; the backend may meanwhile serve {@link Backend#matmulForward} from a
 * prepared copy of them.
 */
public interface FrozenWeights extends AutoCloseable {
    /** For backends that prepare nothing. */
    FrozenWeights NONE = () -> {};

    /**
     * Prepares every frozen weight now rather than on first use, and returns the bytes the
     * prepared copies hold (0 for a backend that prepares nothing).
     */
    default long prepare() {
        return 0;
    }

    /**
     * Ends the promise and drops the prepared copies no other open freeze still covers. Throws
     * IllegalStateException when a prepared weight turns out to have changed while frozen (products
     * computed meanwhile used its old values), after releasing everything.
     */
    @Override
    void close();
}
