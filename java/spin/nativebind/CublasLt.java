package spin.nativebind;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.Optional;

/** cuBLASLt, looked up by name at run time (CUDA 13 first, then 12, then unversioned). */
public final class CublasLt {
    static final List<String> NAMES = List.of("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so");

    private static final Optional<OptionalLibrary> LIBRARY = OptionalLibrary.open(NAMES);
    /** size_t cublasLtGetVersion(void) */
    private static final MethodHandle GET_VERSION = LIBRARY
            .flatMap(library -> library.downcall("cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG)))
            .orElse(null);

    private CublasLt() {}

    public static VendorLibraryStatus status() {
        if (LIBRARY.isEmpty()) {
            return VendorLibraryStatus.notFound("cuBLASLt", NAMES);
        }
        String name = LIBRARY.get().loadedName();
        if (GET_VERSION == null) {
            return VendorLibraryStatus.found("cuBLASLt", name, "unknown (no cublasLtGetVersion)");
        }
        return VendorLibraryStatus.found("cuBLASLt", name, decodeVersion(version()));
    }

    /** cuBLAS encodes its version as 10000 * major + 100 * minor + patch. */
    static String decodeVersion(long encoded) {
        return encoded / 10000 + "." + encoded % 10000 / 100 + "." + encoded % 100;
    }

    private static long version() {
        try {
            return (long) GET_VERSION.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtGetVersion failed", t);
        }
    }
}
