package spin.text;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The demo tokenizer, trained once per test JVM into a temporary directory that tests share read-only. */
public final class TestTokenizer {
    private static Path directory;

    private TestTokenizer() {}

    public static synchronized Path directory() {
        if (directory == null) {
            try {
                Path dir = Files.createTempDirectory("spin-test-tokenizer");
                DemoTokenizer.write(dir, DemoTokenizer.DEFAULT_VOCAB_SIZE, 2048);
                dir.toFile().deleteOnExit();
                dir.resolve(Tokenizer.FILE_NAME).toFile().deleteOnExit();
                dir.resolve(TokenizerConfig.FILE_NAME).toFile().deleteOnExit();
                directory = dir;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return directory;
    }

    public static Tokenizer load() {
        try {
            return Tokenizer.load(directory());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
