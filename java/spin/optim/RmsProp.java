package spin.optim;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.SequencedMap;
import spin.backend.Backend;
import spin.backend.StepGradient;
import spin.model.MistralModel;
import spin.model.ParameterBuffer;
import spin.model.ParameterLayout.Slot;

/** torch.optim.RMSprop without momentum or centering, HF's {@code optim: rmsprop}. */
public final class RmsProp implements Optimizer {
    private final MistralModel model;
    private final ParameterBuffer squareAvg;
    private final float alpha, eps, weightDecay;
    private long steps;

    RmsProp(MistralModel model, float alpha, float eps, float weightDecay) {
        this.model = model;
        this.squareAvg = new ParameterBuffer(model.backend(), model.masterWeights().layout());
        this.alpha = alpha;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    @Override
    public String name() {
        return "rmsprop";
    }

    @Override
    public void step(float lr, StepGradient gradient) {
        Backend backend = model.backend();
        ParameterBuffer params = model.masterWeights(), grads = model.masterGradients();
        ParameterBuffer copy = model.computeWeightsForStep();
        for (Slot slot : params.layout().slots()) {
            String n = slot.name();
            backend.rmspropStep(params.get(n), grads.get(n), squareAvg.get(n), copy == null ? null : copy.get(n), gradient,
                    lr, alpha, eps, WeightDecay.of(slot, weightDecay));
        }
        if (copy != null) {
            model.computeWeightsWritten();
        }
        steps++;
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public SequencedMap<String, ParameterBuffer> state() {
        SequencedMap<String, ParameterBuffer> state = new LinkedHashMap<>();
        state.put("square_avg", squareAvg);
        return Collections.unmodifiableSequencedMap(state);
    }

    @Override
    public void restoreSteps(long steps) {
        this.steps = steps;
    }

    @Override
    public void close() {
        squareAvg.close();
    }
}
