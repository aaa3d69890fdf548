package spin.nativebind;

import java.util.Arrays;

/** A cuBLASLt call that returned a status other than {@code CUBLAS_STATUS_SUCCESS}. */
public final class CublasException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** {@code cublasStatus_t}, numbered as cublas_api.h numbers it. */
    public enum Status {
        SUCCESS(0),
        NOT_INITIALIZED(1),
        ALLOC_FAILED(3),
        INVALID_VALUE(7),
        ARCH_MISMATCH(8),
        MAPPING_ERROR(11),
        EXECUTION_FAILED(13),
        INTERNAL_ERROR(14),
        NOT_SUPPORTED(15),
        LICENSE_ERROR(16);

        final int code;

        Status(int code) {
            this.code = code;
        }

        /** The C name, e.g. {@code CUBLAS_STATUS_NOT_SUPPORTED}. */
        public String cName() {
            return "CUBLAS_STATUS_" + name();
        }

        /** The C name of {@code code}, or a text saying it is none that spin knows. */
        static String nameOf(int code) {
            return Arrays.stream(values())
                    .filter(status -> status.code == code)
                    .map(Status::cName)
                    .findFirst()
                    .orElse("unknown cublasStatus_t");
        }
    }

    private final String call;
    private final int status;

    CublasException(String call, int status) {
        super(call + " failed: " + Status.nameOf(status) + " (" + status + ")");
        this.call = call;
        this.status = status;
    }

    /** The cuBLASLt function that failed, e.g. {@code cublasLtMatmul}. */
    public String call() {
        return call;
    }

    /** The {@code cublasStatus_t} it returned. */
    public int status() {
        return status;
    }

    /** The C name of {@link #status()}, e.g. {@code CUBLAS_STATUS_NOT_SUPPORTED}. */
    public String statusName() {
        return Status.nameOf(status);
    }
}
