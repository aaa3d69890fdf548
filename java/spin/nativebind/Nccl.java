package spin.nativebind;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.Optional;

/** NCCL, looked up by name at run time: whether it is installed, and its version ({@link NcclAbi} binds its calls). */
public final class Nccl {
    static final List<String> NAMES = List.of("libnccl.so.2", "libnccl.so");

    static final Optional<OptionalLibrary> LIBRARY = OptionalLibrary.open(NAMES);
    /** ncclResult_t ncclGetVersion(int* version) */
    private static final MethodHandle GET_VERSION = LIBRARY
            .flatMap(library -> library.downcall("ncclGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS)))
            .orElse(null);

    private Nccl() {}

    public static VendorLibraryStatus status() {
        if (LIBRARY.isEmpty()) {
            return VendorLibraryStatus.notFound("NCCL", NAMES);
        }
        String name = LIBRARY.get().loadedName();
        if (GET_VERSION == null) {
            return VendorLibraryStatus.found("NCCL", name, "unknown (no ncclGetVersion)");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            int result = (int) GET_VERSION.invokeExact(version);
            String decoded = result == NcclAbi.SUCCESS
                    ? decodeVersion(version.get(JAVA_INT, 0))
                    : "unknown (ncclGetVersion error " + result + ")";
            return VendorLibraryStatus.found("NCCL", name, decoded);
        } catch (Throwable t) {
            throw new IllegalStateException("ncclGetVersion failed", t);
        }
    }

    /** NCCL encodes 2.9 and later as 10000 * major + 100 * minor + patch, earlier ones as 1000 * major + ... */
    static String decodeVersion(int encoded) {
        int majorUnit = encoded >= 10000 ? 10000 : 1000;
        return encoded / majorUnit + "." + encoded % majorUnit / 100 + "." + encoded % 100;
    }
}
