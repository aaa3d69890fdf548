package spin.train;

/**
 * How many optimizer steps a run takes, from the data size and the batch settings, by HF Trainer's
 * arithmetic under accelerate: each of the {@code ranks} data-parallel ranks reads
 * per_device_train_batch_size records per micro-batch, so an epoch is
 * {@code ceil(records / (perDevice * ranks))} micro-batches per rank; {@code accumulation}
 * micro-batches make a step; {@code total = ceil(epochs * stepsPerEpoch)} unless max_steps > 0.
 *
 * <p>One difference from HF when the micro-batches of an epoch do not divide by the accumulation:
 * HF floors the steps per epoch and lets the leftover micro-batches open the next epoch's first
 * step, spin ends the epoch with a shorter step (ceil), so every epoch is one pass over the data.
 *
 * @param records training records in the mixed train split
 * @param perDeviceBatch per_device_train_batch_size
 * @param ranks data-parallel ranks (devices) in use
 * @param accumulation micro-batches per optimizer step on each rank
 * @param microBatchesPerEpoch micro-batches of one rank in one epoch
 * @param stepsPerEpoch optimizer steps in one epoch
 * @param totalSteps optimizer steps of the run
 */
public record StepPlan(long records, int perDeviceBatch, int ranks, int accumulation, long microBatchesPerEpoch,
        long stepsPerEpoch, long totalSteps) {

    /** The plan of {@code config} for {@code records} training records on {@code ranks} devices. */
    public static StepPlan of(TrainConfig config, long records, int ranks) {
        int perDevice = config.trainBatchSize();
        int accumulation = config.gradientAccumulationSteps(ranks);
        long recordsPerMicroBatch = (long) perDevice * ranks;
        long micro = ceilDiv(records, recordsPerMicroBatch);
        long perEpoch = ceilDiv(micro, accumulation);
        double planned = Math.ceil(config.numTrainEpochs() * perEpoch);
        if (config.maxSteps() <= 0 && planned > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(config.source() + ": num_train_epochs " + config.numTrainEpochs() + " makes "
                    + String.format("%.3g", planned) + " optimizer steps (" + perEpoch + " per epoch), more than max_steps can count ("
                    + Integer.MAX_VALUE + "); lower num_train_epochs or set max_steps");
        }
        long total = config.maxSteps() > 0 ? config.maxSteps() : (long) planned;
        return new StepPlan(records, perDevice, ranks, accumulation, micro, perEpoch, total);
    }

    /** Records that one optimizer step reads over all ranks. */
    public long globalBatch() {
        return recordsPerStep(perDeviceBatch, ranks, accumulation);
    }

    /** Records per optimizer step of {@code config} on {@code ranks} devices, whatever the data size. */
    public static long recordsPerStep(TrainConfig config, int ranks) {
        return recordsPerStep(config.trainBatchSize(), ranks, config.gradientAccumulationSteps(ranks));
    }

    private static long recordsPerStep(int perDevice, int ranks, int accumulation) {
        return (long) perDevice * ranks * accumulation;
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }
}
