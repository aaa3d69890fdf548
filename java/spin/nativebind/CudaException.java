package spin.nativebind;

/** A failed call into libspin_native, carrying the native side's description of the failure. */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The failure classes of spin_native.h's status codes. */
    public enum Reason {
        INVALID_ARGUMENT(1),
        /** CUDA cannot be used here at all (no driver, too old a driver, no device): "no GPU". */
        NO_DEVICE(2),
        OUT_OF_MEMORY(3),
        CUDA_ERROR(4);

        private final int code;

        Reason(int code) {
            this.code = code;
        }

        static Reason of(int code) {
            for (Reason reason : values()) {
                if (reason.code == code) {
                    return reason;
                }
            }
            throw new IllegalStateException("libspin_native returned unknown status " + code);
        }
    }

    private final Reason reason;
    private final String nativeMessage;

    CudaException(Reason reason, String call, String nativeMessage) {
        super(call + " failed (" + reason + "): " + nativeMessage);
        this.reason = reason;
        this.nativeMessage = nativeMessage;
    }

    public Reason reason() {
        return reason;
    }

    /** The text of spin_last_error() for this failure. */
    public String nativeMessage() {
        return nativeMessage;
    }
}
