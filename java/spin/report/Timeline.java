package spin.report;

import java.util.List;

/**
 * The report's step axis: runs laid end to end in run order, so the whole SPIN loop reads left to
 * right. Run i's step s sits at global step {@code start(i) + s}, and run i starts where run i-1's
 * last logged step ended.
 */
final class Timeline {
    private final List<String> names;
    private final long[] starts;
    private final long end;

    private Timeline(List<String> names, long[] starts, long end) {
        this.names = names;
        this.starts = starts;
        this.end = end;
    }

    static Timeline of(List<Run> runs) {
        long[] starts = new long[runs.size()];
        long at = 0;
        for (int i = 0; i < runs.size(); i++) {
            starts[i] = at;
            at += runs.get(i).log().lastStep();
        }
        return new Timeline(runs.stream().map(Run::name).toList(), starts, at);
    }

    int runs() {
        return names.size();
    }

    String name(int run) {
        return names.get(run);
    }

    long start(int run) {
        return starts[run];
    }

    /** The last run's last step on the global axis. */
    long end() {
        return end;
    }

    long globalStep(int run, long step) {
        return starts[run] + step;
    }
}
