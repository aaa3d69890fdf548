package spin.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes files through a temporary sibling and an atomic rename: readers see the old file or the
 * whole new one.
 *
 * <p>The temporary sibling of {@code NAME} is {@code .NAME.DIGITS.partial} (DIGITS a random
 * unsigned long, the shape {@code Files.createTempFile} used to give, so leftovers of older
 * versions match too). It is created with {@code CREATE_NEW} and no explicit permissions, so the
 * finished file gets the mode any other tool would give it under the process' umask (0644 under
 * umask 022), not createTempFile's 0600. A write that fails with an exception removes its
 * temporary file; one killed outright leaves it behind, and {@link #sweep} removes such leftovers.
 */
public final class AtomicFiles {
    /** {@code .NAME.DIGITS.partial}: group 1 is the target's file name. */
    private static final Pattern TEMP = Pattern.compile("\\.(.+)\\.\\d{1,20}\\.partial");
    /** Target name of the temporary file {@link #requireWritableDirectory} creates and removes. */
    static final String WRITE_CHECK = "spin-write-check";

    /** Test seam: runs after a temporary file is filled, before it is flushed and renamed into place. */
    @FunctionalInterface
    interface Hook {
        void filled(Path target, Path temp) throws IOException;
    }

    static volatile Hook hook = (target, temp) -> {};

    private AtomicFiles() {}

    @FunctionalInterface
    public interface ChannelWriter {
        void write(FileChannel channel) throws IOException;
    }

    /** Fills a file at the path it is given; for writers (such as DuckDB's COPY) that open files themselves. */
    @FunctionalInterface
    public interface PathWriter {
        void write(Path temp) throws IOException;
    }

    public static void write(Path target, ChannelWriter writer) throws IOException {
        writeThrough(target, temp -> {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                writer.write(channel);
            }
        });
    }

    /**
     * Lets {@code writer} fill a temporary sibling of {@code target}, flushes it to disk and renames
     * it into place. A failure (a full disk, say) removes the temporary file and is reported as an
     * IOException that names {@code target}.
     */
    public static void writeThrough(Path target, PathWriter writer) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        Path temp;
        try {
            Files.createDirectories(dir);
            temp = createTemp(dir, target.getFileName().toString());
        } catch (IOException e) {
            throw named(target, e);
        }
        try {
            writer.write(temp);
            hook.filled(target, temp);
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                channel.force(true);
            }
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(temp);
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            if (e instanceof IOException io) {
                throw named(target, io);
            }
            throw e;
        }
    }

    public static void writeString(Path target, String text) throws IOException {
        writeBytes(target, text.getBytes(StandardCharsets.UTF_8));
    }

    public static void writeBytes(Path target, byte[] bytes) throws IOException {
        write(target, channel -> {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                channel.write(b);
            }
        });
    }

    /** An empty new file {@code .NAME.DIGITS.partial} in {@code dir}, with the default permissions. */
    private static Path createTemp(Path dir, String name) throws IOException {
        while (true) {
            Path temp = dir.resolve("." + name + "." + Long.toUnsignedString(ThreadLocalRandom.current().nextLong()) + ".partial");
            try {
                Files.newByteChannel(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
                return temp;
            } catch (FileAlreadyExistsException taken) {
                // another writer drew the same number: draw again
            }
        }
    }

    /** The target file name a temporary file of ours stands for, or null when {@code fileName} is not one. */
    static String targetOf(String fileName) {
        Matcher m = TEMP.matcher(fileName);
        return m.matches() ? m.group(1) : null;
    }

    /**
     * Removes, from {@code dir} itself (not its subdirectories), the temporary files that writes of
     * the files {@code ours} accepts left behind when they were killed: only names of the form
     * {@code .NAME.DIGITS.partial} with {@code ours.test(NAME)}, never anything else. Call it only
     * while no other writer uses the directory (hold its {@link OutputLock}).
     *
     * @return the files removed
     */
    public static List<Path> sweep(Path dir, Predicate<String> ours) throws IOException {
        List<Path> removed = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return removed;
        }
        try (Stream<Path> entries = Files.list(dir)) {
            for (Path p : entries.sorted().toList()) {
                String target = targetOf(p.getFileName().toString());
                if (target != null && (ours.test(target) || target.equals(WRITE_CHECK)) && Files.isRegularFile(p)) {
                    Files.deleteIfExists(p);
                    removed.add(p);
                }
            }
        }
        return removed;
    }

    /**
     * Creates {@code dir} if needed and proves that files can be created in it (a temporary file is
     * made and removed), so a command that will write there fails before its expensive work, with
     * a message that names the directory.
     */
    public static void requireWritableDirectory(Path dir, String what) throws IOException {
        try {
            Files.createDirectories(dir);
            Path probe = createTemp(dir, WRITE_CHECK);
            Files.deleteIfExists(probe); // IfExists: a sweep by the holder of the directory may have taken it
        } catch (IOException e) {
            throw new IOException(what + " " + dir + " is not writable (" + reason(e) + "); fix its permissions or choose another",
                    e);
        }
    }

    /** {@code e} as an IOException whose message names {@code target} (unchanged when it already does). */
    private static IOException named(Path target, IOException e) {
        String message = e.getMessage();
        if (message != null && message.contains(target.toString())) {
            return e;
        }
        return new IOException("cannot write " + target + ": " + reason(e), e);
    }

    /** What went wrong, without the temporary file's name where the exception carries only that. */
    static String reason(IOException e) {
        if (e instanceof FileSystemException fs) {
            String why = fs.getReason() != null ? fs.getReason() : switch (e) {
                case AccessDeniedException denied -> "permission denied";
                case NoSuchFileException missing -> "no such file or directory";
                case FileAlreadyExistsException exists -> "already exists";
                case NotDirectoryException notDir -> "not a directory";
                default -> e.getClass().getSimpleName();
            };
            return fs.getFile() == null ? why : fs.getFile() + ": " + why;
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }
}
