package spin.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Exclusive use of an output directory by one command: an OS file lock ({@link FileChannel#tryLock})
 * on {@code DIR/.spin.lock}. A second command on the same directory is refused at once, naming the
 * holder. The operating system drops the lock when the holder exits in any way, kill -9 included,
 * so the lock file that stays behind never blocks the next run: only a live holder does.
 *
 * <p>The file is never deleted: a process could lock it just before the deletion and another
 * create and lock a new one, and both would run. It holds one line, who locked it last. The
 * holding process never opens the file again by its name, because on Linux closing any descriptor
 * of a file drops every POSIX lock the process holds on it; locks within this JVM are therefore
 * checked in a table of their own before the file is touched.
 */
public final class OutputLock implements AutoCloseable {
    public static final String FILE_NAME = ".spin.lock";

    /** Directories this JVM holds (by real path), with the holder's description. */
    private static final Map<Path, String> HELD = new ConcurrentHashMap<>();

    private final Path key;
    private final FileChannel channel;
    private final FileLock lock;

    private OutputLock(Path key, FileChannel channel, FileLock lock) {
        this.key = key;
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * Checks that {@code dir} (created if missing) is writable, then locks it for {@code command}.
     *
     * @param what how messages name the directory, e.g. {@code output_dir} or {@code --output-dir}
     * @throws IllegalStateException when another process (or another command in this one) holds it
     * @throws IOException when the directory is not writable
     */
    public static OutputLock acquire(Path dir, String what, String command) throws IOException {
        AtomicFiles.requireWritableDirectory(dir, what);
        Path key = dir.toRealPath();
        String who = "pid " + ProcessHandle.current().pid() + ", " + command + ", since " + Instant.now().truncatedTo(ChronoUnit.SECONDS);
        String inThisJvm = HELD.putIfAbsent(key, who);
        if (inThisJvm != null) {
            throw new IllegalStateException(what + " " + dir + " is in use by another command of this process (" + inThisJvm
                    + "); run one command per directory at a time");
        }
        Path file = dir.resolve(FILE_NAME);
        FileChannel channel = null;
        try {
            try {
                channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            } catch (IOException e) {
                throw new IOException(what + " " + dir + ": cannot open the lock file " + file + " (" + AtomicFiles.reason(e) + ")", e);
            }
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (IOException e) { // a file system without locks (some network mounts)
                throw new IOException(what + " " + dir + ": cannot lock " + file + " (" + AtomicFiles.reason(e)
                        + "); use a local directory", e);
            }
            if (lock == null) {
                throw new IllegalStateException(what + " " + dir + " is in use by another spin process (" + holder(file)
                        + "); wait for it to finish, or choose another " + what);
            }
            channel.truncate(0);
            ByteBuffer buffer = ByteBuffer.wrap((who + "\n").getBytes(StandardCharsets.UTF_8));
            while (buffer.hasRemaining()) {
                channel.write(buffer, buffer.position());
            }
            return new OutputLock(key, channel, lock);
        } catch (IOException | RuntimeException e) {
            HELD.remove(key);
            if (channel != null) {
                channel.close();
            }
            throw e;
        }
    }

    /** Who holds the file, as its holder wrote it (read only by a process that does not hold it). */
    private static String holder(Path file) {
        try {
            String first = Files.readString(file, StandardCharsets.UTF_8).lines().findFirst().orElse("").strip();
            return first.isEmpty() ? "holder unknown" : first;
        } catch (IOException e) {
            return "holder unknown";
        }
    }

    @Override
    public void close() throws IOException {
        try {
            lock.release();
            channel.close();
        } finally {
            HELD.remove(key);
        }
    }
}
