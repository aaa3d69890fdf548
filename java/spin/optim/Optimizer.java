package spin.optim;

import java.util.SequencedMap;
import spin.backend.StepGradient;
import spin.model.ParameterBuffer;

/**
 * Updates a model's parameters in place from its gradient buffer. State tensors are laid out like
 * the parameters (one {@link ParameterBuffer} per kind of state) so that checkpoints and ZeRO
 * shards treat them as plain flat buffers.
 */
public interface Optimizer extends AutoCloseable {

    /** The config name: {@code rmsprop} or {@code adamw}. */
    String name();

    /** Applies one update at learning rate {@code lr} from the current gradients, leaving them as they are. */
    default void step(float lr) {
        step(lr, StepGradient.AS_IS);
    }

    /**
     * Applies one update at learning rate {@code lr} from the current gradients taken as
     * {@code gradient} says, for every weight in the update's own pass: times a clipping factor on
     * the backend, and zeroed (every slot; a buffer's padding past the slots, never written, stays
     * zero) when this step is the gradients' last use.
     */
    void step(float lr, StepGradient gradient);

    /** Updates applied so far (AdamW's bias corrections depend on it). */
    long steps();

    /**
     * The state buffers by name ({@code square_avg}; {@code exp_avg}, {@code exp_avg_sq}), for
     * checkpoints, in that fixed order (torch's), so a checkpoint's optimizer file is the same bytes
     * in every run ({@code Map.of}'s iteration order changes from one JVM to the next).
     */
    SequencedMap<String, ParameterBuffer> state();

    /** Restores the update count after the state buffers were filled from a checkpoint. */
    void restoreSteps(long steps);

    @Override
    void close();
}
