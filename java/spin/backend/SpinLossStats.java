package spin.backend;

/**
 * The SPIN loss of one batch and its metrics, named as the reference trainer logs them.
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
        double logpsGenerated) {}
