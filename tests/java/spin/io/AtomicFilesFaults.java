package spin.io;

import java.io.IOException;
import java.nio.file.Path;

/** Lets tests of other packages inject faults into {@link AtomicFiles} writes (its hook is package-private). */
public final class AtomicFilesFaults {
    private AtomicFilesFaults() {}

    /** Called with the target and its filled temporary file, before the flush and the rename. */
    @FunctionalInterface
    public interface Filled {
        void at(Path target, Path temp) throws IOException;
    }

    public static void set(Filled filled) {
        AtomicFiles.hook = filled::at;
    }

    public static void clear() {
        AtomicFiles.hook = (target, temp) -> {};
    }
}
