package spin.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * model_revision against the traces hub downloads leave; the metadata fixture was written by
 * huggingface_hub's own write_download_metadata (tools/hub_fixtures.py).
 */
class HubRevisionTest {
    private static final String REFERENCE = "ac6e600eefcce74f5e8bae1035d4f66019e93190";
    private static final Path FIXTURE = Path.of("tests", "fixtures", "hub", "local-dir");

    @TempDir
    Path dir;

    private Path downloaded() throws IOException {
        Path model = dir.resolve("zephyr");
        Path metadata = model.resolve(HubRevision.DOWNLOAD_METADATA);
        Files.createDirectories(metadata.getParent());
        Files.copy(FIXTURE.resolve(HubRevision.DOWNLOAD_METADATA), metadata);
        return model;
    }

    @Test
    void aLocalDirDownloadRecordsItsCommit() throws IOException {
        Path model = downloaded();
        assertEquals(Optional.of(REFERENCE), HubRevision.downloadedCommit(model));
        assertTrue(HubRevision.check(model, "ac6e600").contains("holds commit " + REFERENCE), "a short hash matches");
        assertTrue(HubRevision.check(model, REFERENCE.toUpperCase()).contains("holds commit"));
    }

    @Test
    void anotherCommitIsRefusedWithTheDownloadCommand() throws IOException {
        Path model = downloaded();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HubRevision.check(model, "3bac9e5"));
        assertTrue(e.getMessage().contains("was downloaded at commit " + REFERENCE), e.getMessage());
        assertTrue(e.getMessage().contains("--revision 3bac9e5 --local-dir " + model), e.getMessage());
    }

    @Test
    void aHubCacheSnapshotIsNamedByItsCommit() throws IOException {
        Path snapshot = Files.createDirectories(dir.resolve("models--a--b").resolve("snapshots").resolve(REFERENCE));
        assertEquals(Optional.of(REFERENCE), HubRevision.downloadedCommit(snapshot));
    }

    @Test
    void withoutATraceOrWithABranchNameItOnlyAdvises() throws IOException {
        Path plain = Files.createDirectories(dir.resolve("plain"));
        assertEquals(Optional.empty(), HubRevision.downloadedCommit(plain));
        String note = HubRevision.check(plain, REFERENCE);
        assertTrue(note.startsWith("note: model_revision " + REFERENCE) && note.contains("records no hub commit"), note);
        assertTrue(HubRevision.check(downloaded(), "main").contains("is a branch or tag"));
    }
}
