package spin.io;

import java.nio.file.Path;

/** A second process for lock tests: locks the directory it is given, says "locked", and holds it until stdin closes or it is killed. */
public final class HoldOutputLock {
    private HoldOutputLock() {}

    public static void main(String[] args) throws Exception {
        try (OutputLock lock = OutputLock.acquire(Path.of(args[0]), "--output-dir", "lock holder")) {
            System.out.println("locked");
            System.out.flush();
            while (System.in.read() >= 0) {
                // hold
            }
        }
    }
}
