package spin.nativebind;

/** An NCCL call returned an {@code ncclResult_t} other than {@code ncclSuccess}. */
public final class NcclException extends RuntimeException {
    private final String call;
    private final int result;

    NcclException(String call, int result, String errorString, String lastError) {
        super(call + " failed: " + errorString + " (ncclResult_t " + result + ")"
                + (lastError.isBlank() ? "" : ": " + lastError));
        this.call = call;
        this.result = result;
    }

    /** The NCCL function that failed. */
    public String call() {
        return call;
    }

    /** Its ncclResult_t ({@link NcclAbi#SUCCESS} never). */
    public int result() {
        return result;
    }

    /** Whether a peer failed or aborted ({@code ncclRemoteError}), rather than this rank's own call. */
    public boolean isRemote() {
        return result == NcclAbi.REMOTE_ERROR;
    }
}
