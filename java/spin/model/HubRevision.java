package spin.model;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which hub commit a local model directory holds, where the download left a trace, so a config's
 * {@code model_revision} (the reference pins zephyr-7b-sft-full at ac6e600, and warns that the newer
 * revision gives other results) can be checked although spin only loads local directories.
 *
 * <p>Two traces are read: huggingface_hub's {@code --local-dir} downloads write
 * {@code DIR/.cache/huggingface/download/config.json.metadata}, whose first line is the commit hash;
 * a directory inside the hub cache is {@code .../snapshots/COMMIT/}.
 */
public final class HubRevision {
    static final Path DOWNLOAD_METADATA = Path.of(".cache", "huggingface", "download", "config.json.metadata");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");
    private static final Pattern SNAPSHOT = Pattern.compile(".*/snapshots/([0-9a-f]{40})/?");
    private static final Pattern HEX_REVISION = Pattern.compile("[0-9a-f]{7,40}");

    private HubRevision() {}

    /** The commit the directory was downloaded at, when a trace of the download says so. */
    public static Optional<String> downloadedCommit(Path modelDir) throws IOException {
        Path metadata = modelDir.resolve(DOWNLOAD_METADATA);
        if (Files.isRegularFile(metadata)) {
            String first = Files.readAllLines(metadata).stream().findFirst().orElse("").trim();
            if (COMMIT.matcher(first).matches()) {
                return Optional.of(first);
            }
        }
        Matcher snapshot = SNAPSHOT.matcher(modelDir.toAbsolutePath().normalize().toString().replace('\\', '/'));
        return snapshot.matches() ? Optional.of(snapshot.group(1)) : Optional.empty();
    }

    /**
     * What to tell the user about {@code revision} for {@code modelDir}: that it matches, or that it
     * cannot be checked and how to download it. A commit that differs is refused.
     *
     * @throws IllegalArgumentException when the directory's recorded commit is not {@code revision}
     */
    public static String check(Path modelDir, String revision) throws IOException {
        String wanted = revision.trim().toLowerCase(Locale.ROOT);
        String download = "huggingface-cli download REPO --revision " + revision + " --local-dir " + modelDir;
        Optional<String> commit = downloadedCommit(modelDir);
        if (commit.isEmpty()) {
            return "note: model_revision " + revision + ": spin loads local directories and " + modelDir
                    + " records no hub commit; make sure it holds that revision (" + download + ")";
        }
        if (!HEX_REVISION.matcher(wanted).matches()) {
            return "note: model_revision " + revision + " is a branch or tag, which cannot be compared with " + modelDir
                    + "'s recorded commit " + commit.get() + "; pin a commit hash to have it checked";
        }
        if (!commit.get().startsWith(wanted)) {
            throw new IllegalArgumentException("model_revision " + revision + " but " + modelDir + " was downloaded at commit "
                    + commit.get() + "; download that revision (" + download + ") or remove model_revision");
        }
        return "model_revision " + revision + ": " + modelDir + " holds commit " + commit.get();
    }
}
