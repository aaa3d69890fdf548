package spin.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Finds the runs of a SPIN work directory: every {@code metrics.jsonl} up to {@link #MAX_DEPTH}
 * levels down is a run, named by its directory relative to the work directory without a trailing
 * {@code /train} ({@code iter0/train/metrics.jsonl} is run {@code iter0}).
 */
public final class RunDiscovery {
    static final String FILE_NAME = "metrics.jsonl";
    /** Deep enough for WORK/NAME/train/metrics.jsonl with a level to spare, shallow enough not to crawl checkpoints. */
    static final int MAX_DEPTH = 4;
    private static final String TRAIN_SUFFIX = "/train";
    private static final Pattern ITERATION = Pattern.compile("iter(\\d{1,18})");

    /** The loop's order: the SFT warm-up, then iterations by number (iter2 before iter10), then anything else by name. */
    static final Comparator<String> ORDER = Comparator.comparingInt(RunDiscovery::rank)
            .thenComparingLong(RunDiscovery::iteration)
            .thenComparing(Comparator.naturalOrder());

    private RunDiscovery() {}

    /** The runs under {@code work} in {@link #ORDER}, each log read. */
    public static List<Run> find(Path work) throws IOException {
        if (!Files.isDirectory(work)) {
            throw new NoSuchFileException(work.toString(), null, "no such work directory");
        }
        List<Path> files;
        try (Stream<Path> walk = Files.walk(work, MAX_DEPTH)) {
            files = walk.filter(p -> p.getFileName().toString().equals(FILE_NAME) && Files.isRegularFile(p)).sorted().toList();
        }
        if (files.isEmpty()) {
            throw new NoSuchFileException(work.toString(), null, "no " + FILE_NAME + " in it or up to " + MAX_DEPTH
                    + " levels below; pass the work directory a training run or the SPIN loop wrote into");
        }
        TreeMap<String, Path> byName = new TreeMap<>(ORDER);
        for (Path file : files) {
            Path previous = byName.putIfAbsent(name(work, file), file);
            if (previous != null) {
                throw new IOException(work + ": " + work.relativize(previous) + " and " + work.relativize(file) + " are both run "
                        + name(work, file) + "; move one of them out of the work directory");
            }
        }
        List<Run> runs = new ArrayList<>();
        for (var entry : byName.entrySet()) {
            runs.add(new Run(entry.getKey(), MetricsLog.read(entry.getValue())));
        }
        return runs;
    }

    /** The run name of a metrics file: its directory under {@code work}, '/'-separated, without a trailing /train. */
    static String name(Path work, Path metricsFile) {
        Path relative = work.relativize(metricsFile.getParent());
        if (relative.toString().isEmpty()) {
            // A log right in the work directory (--work pointing at one run): the directory's own name says which.
            Path own = work.toAbsolutePath().normalize().getFileName();
            return own == null ? "run" : own.toString();
        }
        List<String> parts = new ArrayList<>();
        relative.forEach(part -> parts.add(part.toString()));
        String name = String.join("/", parts);
        return name.endsWith(TRAIN_SUFFIX) ? name.substring(0, name.length() - TRAIN_SUFFIX.length()) : name;
    }

    private static int rank(String name) {
        return name.equals("sft") ? 0 : ITERATION.matcher(name).matches() ? 1 : 2;
    }

    private static long iteration(String name) {
        Matcher m = ITERATION.matcher(name);
        return m.matches() ? Long.parseLong(m.group(1)) : 0;
    }
}
