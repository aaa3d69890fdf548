package spin.optim;

/**
 * HF's schedulers as LambdaLR over optimizer steps: the learning rate of 0-based step {@code s} is
 * {@code base * lambda(s)}, so a linear or cosine schedule with warmup runs its first step at 0.
 */
public record LearningRateSchedule(String type, double baseLearningRate, long warmupSteps, long totalSteps) {

    public LearningRateSchedule {
        if (!type.equals("linear") && !type.equals("cosine") && !type.equals("constant")
                && !type.equals("constant_with_warmup")) {
            throw new IllegalArgumentException(
                    "lr_scheduler_type must be linear, cosine, constant or constant_with_warmup, got \"" + type + "\"");
        }
        if (warmupSteps < 0 || totalSteps < 1) {
            throw new IllegalArgumentException("a schedule needs total steps >= 1 and warmup >= 0, got " + totalSteps
                    + " and " + warmupSteps);
        }
    }

    /** HF's rule: warmup_steps when given (> 0), else ceil(warmup_ratio * total steps). */
    public static long warmupSteps(long warmupSteps, double warmupRatio, long totalSteps) {
        return warmupSteps > 0 ? warmupSteps : (long) Math.ceil(warmupRatio * totalSteps);
    }

    public double at(long step) {
        return baseLearningRate * multiplier(step);
    }

    private double multiplier(long s) {
        if (type.equals("constant")) {
            return 1.0;
        }
        if (s < warmupSteps) {
            return (double) s / Math.max(1, warmupSteps);
        }
        return switch (type) {
            case "linear" -> Math.max(0.0, (double) (totalSteps - s) / Math.max(1, totalSteps - warmupSteps));
            case "cosine" -> {
                double progress = (double) (s - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
                yield Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * progress)));
            }
            default -> 1.0;
        };
    }
}
