package spin.report;

/** One training run of a SPIN work directory: its name ("sft", "iter0", ...) and its metrics. */
public record Run(String name, MetricsLog log) {}
