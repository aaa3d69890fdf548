package spin.cli;

import java.io.PrintWriter;
import java.util.EnumMap;
import java.util.Map;
import spin.generate.FinishReason;
import spin.generate.Generation;
import spin.generate.GenerationListener;

/**
 * The progress bar of {@code spin generate}: prompts done, generated tokens per second and the time
 * left. On a terminal it redraws one line in place a few times a second; in a log (no console) it
 * writes a line every {@link #LOG_INTERVAL_NANOS}. The last state is always drawn by {@link #finish}.
 */
final class GenerationProgress implements GenerationListener {
    private static final long TERMINAL_INTERVAL_NANOS = 250_000_000L;
    private static final long LOG_INTERVAL_NANOS = 30_000_000_000L;
    private static final int BAR_WIDTH = 24;

    private final PrintWriter out;
    private final String label;
    private final int total;
    private final boolean terminal;
    private final long start = System.nanoTime();
    private final Map<FinishReason, Integer> finishes = new EnumMap<>(FinishReason.class);
    private long lastDrawn = start;
    private int done;
    private long promptTokens;
    private long generatedTokens;

    GenerationProgress(PrintWriter out, String label, int total, boolean terminal) {
        this.out = out;
        this.label = label;
        this.total = total;
        this.terminal = terminal;
    }

    @Override
    public void stepDone(StepReport step) {
        promptTokens += step.promptTokens();
        generatedTokens += step.sampled();
        long now = System.nanoTime();
        if (now - lastDrawn >= (terminal ? TERMINAL_INTERVAL_NANOS : LOG_INTERVAL_NANOS)) {
            lastDrawn = now;
            draw(now, false);
        }
    }

    @Override
    public void finished(Generation generation) {
        done++;
        finishes.merge(generation.finish(), 1, Integer::sum);
    }

    /** Draws the final state and ends the line. */
    void finish() {
        draw(System.nanoTime(), true);
    }

    long promptTokens() {
        return promptTokens;
    }

    long generatedTokens() {
        return generatedTokens;
    }

    double seconds() {
        return (System.nanoTime() - start) / 1e9;
    }

    /** How the answers ended, e.g. "790 at EOS, 10 at max_new_tokens". */
    String finishSummary() {
        StringBuilder s = new StringBuilder();
        for (Map.Entry<FinishReason, Integer> e : finishes.entrySet()) {
            s.append(s.isEmpty() ? "" : ", ").append(String.format("%,d ", e.getValue())).append(switch (e.getKey()) {
                case STOP_TOKEN -> "at EOS or a stop token";
                case STOP_STRING -> "at a stop string";
                case LENGTH -> "at max_new_tokens";
            });
        }
        return s.toString();
    }

    private void draw(long now, boolean last) {
        double seconds = (now - start) / 1e9;
        int filled = total == 0 ? BAR_WIDTH : (int) ((long) BAR_WIDTH * done / total);
        String eta = done == 0 || done == total ? "--" : duration(seconds * (total - done) / done);
        String line = String.format("%s [%s%s] %,d/%,d prompts | %,.0f tokens/s | elapsed %s | ETA %s", label,
                "#".repeat(filled), ".".repeat(BAR_WIDTH - filled), done, total, seconds > 0 ? generatedTokens / seconds : 0,
                duration(seconds), eta);
        if (terminal) {
            out.print("\r" + line + (last ? "\n" : ""));
        } else {
            out.println(line);
        }
        out.flush();
    }

    static String duration(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60)
                : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : String.format("%.1fs", seconds);
    }
}
