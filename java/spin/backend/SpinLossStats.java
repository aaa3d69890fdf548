package spin.backend;

import java.util.List;

/**
 * The SPIN loss of one batch and its metrics, named as the reference trainer logs them; the host
 * view of the F64 [{@link #COUNT}] tensor {@link Backend#spinLossForward} writes, whose elements
 * are the components in declaration order.
 *
 * @param loss mean over the batch of the per-pair loss
 * @param rewardsReal mean of {@code beta * (logp_policy(y) - logp_opponent(y))} ({@code rewards/real})
 * @param rewardsGenerated the same for the generated answer ({@code rewards/generated})
 * @param rewardsAccuracy fraction of pairs whose real reward exceeds the generated one ({@code rewards/accuracies})
 * @param rewardsMargin mean of real minus generated reward ({@code rewards/margins})
 * @param logpsReal mean policy log-prob of the real answers ({@code logps/real})
 * @param logpsGenerated mean policy log-prob of the generated answers ({@code logps/generated})
 */
public record SpinLossStats(
        double loss,
        double rewardsReal,
        double rewardsGenerated,
        double rewardsAccuracy,
        double rewardsMargin,
        double logpsReal,
        double logpsGenerated) {

    /** The components' metric names as the reference trainer logs them, in declaration order. */
    public static final List<String> NAMES = List.of("loss", "rewards/real", "rewards/generated", "rewards/accuracies",
            "rewards/margins", "logps/real", "logps/generated");

    /** Elements of the statistics tensor. */
    public static final int COUNT = NAMES.size();

    /** The statistics from the tensor's elements, as {@link Backend#readDoubles} returns them. */
    public static SpinLossStats of(double[] stats) {
        if (stats.length != COUNT) {
            throw new IllegalArgumentException("SPIN loss statistics are " + COUNT + " doubles, got " + stats.length);
        }
        return new SpinLossStats(stats[0], stats[1], stats[2], stats[3], stats[4], stats[5], stats[6]);
    }

    /** The components in declaration order, as the statistics tensor holds them. */
    public double[] toArray() {
        return new double[] {loss, rewardsReal, rewardsGenerated, rewardsAccuracy, rewardsMargin, logpsReal, logpsGenerated};
    }
}
