package spin.optim;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.SequencedMap;
import spin.backend.Backend;
import spin.backend.StepGradient;
import spin.model.MistralModel;
import spin.model.ParameterBuffer;
import spin.model.ParameterLayout.Slot;

/** torch.optim.AdamW (decoupled weight decay, bias-corrected moments), HF's {@code optim: adamw_torch}. */
public final class AdamW implements Optimizer {
    private final MistralModel model;
    private final ParameterBuffer expAvg, expAvgSq;
    private final float beta1, beta2, eps, weightDecay;
    private long steps;

    AdamW(MistralModel model, float beta1, float beta2, float eps, float weightDecay) {
        this.model = model;
        this.expAvg = new ParameterBuffer(model.backend(), model.masterWeights().layout());
        this.expAvgSq = new ParameterBuffer(model.backend(), model.masterWeights().layout());
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    @Override
    public String name() {
        return "adamw";
    }

    @Override
    public void step(float lr, StepGradient gradient) {
        Backend backend = model.backend();
        ParameterBuffer params = model.masterWeights(), grads = model.masterGradients();
        ParameterBuffer copy = model.computeWeightsForStep();
        steps++;
        for (Slot slot : params.layout().slots()) {
            String n = slot.name();
            backend.adamwStep(params.get(n), grads.get(n), expAvg.get(n), expAvgSq.get(n), copy == null ? null : copy.get(n),
                    gradient, lr, beta1, beta2, eps, WeightDecay.of(slot, weightDecay), steps);
        }
        if (copy != null) {
            model.computeWeightsWritten();
        }
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public SequencedMap<String, ParameterBuffer> state() {
        SequencedMap<String, ParameterBuffer> state = new LinkedHashMap<>();
        state.put("exp_avg", expAvg);
        state.put("exp_avg_sq", expAvgSq);
        return Collections.unmodifiableSequencedMap(state);
    }

    @Override
    public void restoreSteps(long steps) {
        this.steps = steps;
    }

    @Override
    public void close() {
        expAvg.close();
        expAvgSq.close();
    }
}
