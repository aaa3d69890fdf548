package spin;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Starts another JVM on this test run's classes: a second real process for locks, umasks and Map orders. */
public final class ChildJvm {
    private ChildJvm() {}

    /** The command line that runs {@code mainClass} with {@code args} in a fresh JVM with spin's flags. */
    public static List<String> command(Class<?> mainClass, String... args) {
        List<String> command = new ArrayList<>();
        command.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        command.add("--add-modules");
        command.add("jdk.incubator.vector");
        command.add("--enable-native-access=ALL-UNNAMED");
        String nativeDir = System.getProperty("spin.native.dir");
        if (nativeDir != null) {
            command.add("-Dspin.native.dir=" + nativeDir);
        }
        command.add("-cp");
        // surefire starts tests from a manifest-only jar; the real class path is in this property
        command.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        command.add(mainClass.getName());
        command.addAll(List.of(args));
        return command;
    }

    /** The same, started through {@code sh} with the given umask (for example "022"). */
    public static List<String> withUmask(String umask, List<String> command) {
        List<String> shell = new ArrayList<>(List.of("sh", "-c", "umask " + umask + " && exec \"$@\"", "sh"));
        shell.addAll(command);
        return shell;
    }

    /** Runs {@code command} to its end (at most {@code seconds}); the exit code, with the output in the message on failure. */
    public static Result run(List<String> command, long seconds) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().close();
        byte[] output = p.getInputStream().readAllBytes();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("child did not finish in " + seconds + " s: " + command);
        }
        return new Result(p.exitValue(), new String(output, StandardCharsets.UTF_8));
    }

    public record Result(int exitCode, String output) {}
}
