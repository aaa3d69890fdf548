package spin.nativebind;

/**
 * A downcall that returns a status code ({@code spin_*}, {@code cublasLt*}): a lambda around
 * {@link java.lang.invoke.MethodHandle#invokeExact}, which declares {@code Throwable}.
 */
@FunctionalInterface
public interface StatusCall {
    int call() throws Throwable;

    /** The call's status; a checked exception (a downcall never throws one) becomes unchecked. */
    static int invoke(StatusCall call) {
        try {
            return call.call();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("downcall threw a checked exception", t);
        }
    }
}
