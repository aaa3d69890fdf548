package spin.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Atomic writes: what a failed write leaves and says, which leftovers a sweep takes, and the writability check. */
class AtomicFilesTest {
    @TempDir
    Path dir;

    @AfterEach
    void clearFaults() {
        AtomicFilesFaults.clear();
    }

    private Set<String> names() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
        }
    }

    @Test
    void aFailedWriteNamesItsTargetKeepsTheOldFileAndLeavesNoTemporaryFile() throws IOException {
        Path target = dir.resolve("model.safetensors");
        AtomicFiles.writeString(target, "old");
        AtomicFilesFaults.set((t, temp) -> {
            throw new IOException("No space left on device");
        });
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.writeString(target, "new"));
        assertEquals("cannot write " + target + ": No space left on device", e.getMessage());
        assertEquals("old", Files.readString(target));
        assertEquals(Set.of("model.safetensors"), names(), "the partial file is removed");
    }

    @Test
    void sweepRemovesOnlyTemporaryFilesOfTheNamesItIsGiven() throws IOException {
        List<String> ours = List.of(".model.safetensors.12345.partial", ".metrics.jsonl.18446744073709551615.partial",
                ".loser_3.jsonl.7.partial", ".spin-write-check.99.partial");
        List<String> theirs = List.of("model.safetensors", "notes.partial", ".model.safetensors.partial",
                ".model.safetensors.12x.partial", ".mine.txt.123.partial", "model.safetensors.123.partial", ".loser_3.jsonl.7.partial.bak");
        for (String name : ours) {
            Files.writeString(dir.resolve(name), "leftover");
        }
        for (String name : theirs) {
            Files.writeString(dir.resolve(name), "keep");
        }
        Files.createDirectories(dir.resolve(".config.json.5.partial")); // a directory is never ours
        Set<String> written = Set.of("model.safetensors", "metrics.jsonl", "loser_3.jsonl");
        List<Path> removed = AtomicFiles.sweep(dir, written::contains);
        assertEquals(ours.stream().map(dir::resolve).sorted().toList(), removed);
        Set<String> left = names();
        assertTrue(left.containsAll(theirs), left.toString());
        assertTrue(left.contains(".config.json.5.partial"));
        assertEquals(theirs.size() + 1, left.size(), left.toString());
    }

    @Test
    void theTemporaryFileIsNamedForTheSweepAndCreatedWithTheUmasksMode() throws IOException {
        Path target = dir.resolve("config.json");
        String[] seen = new String[2];
        AtomicFilesFaults.set((t, temp) -> {
            seen[0] = temp.getFileName().toString();
            seen[1] = PosixFilePermissions.toString(Files.getPosixFilePermissions(temp));
        });
        AtomicFiles.writeString(target, "{}");
        assertEquals("config.json", AtomicFiles.targetOf(seen[0]), seen[0]);
        // what any tool gets for a new file under this process' umask (createTempFile gave rw------- whatever the umask)
        Path plain = Files.createFile(dir.resolve("plain"));
        String expected = PosixFilePermissions.toString(Files.getPosixFilePermissions(plain));
        assertEquals(expected, seen[1]);
        assertEquals(expected, PosixFilePermissions.toString(Files.getPosixFilePermissions(target)));
    }

    @Test
    void anUnwritableDirectoryIsNamed() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.requireWritableDirectory(file.resolve("out"), "output_dir"));
        assertTrue(e.getMessage().startsWith("output_dir " + file.resolve("out") + " is not writable ("), e.getMessage());
        Path ok = dir.resolve("new/out");
        AtomicFiles.requireWritableDirectory(ok, "output_dir");
        assertTrue(Files.isDirectory(ok));
        try (Stream<Path> left = Files.list(ok)) {
            assertFalse(left.findAny().isPresent(), "the probe file is removed");
        }
    }
}
