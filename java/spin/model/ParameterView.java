package spin.model;

import spin.backend.Tensor;

/** Weights (or their gradients) by HF name: a whole {@link ParameterBuffer}, or the gathered weights of one ZeRO-3 unit. */
public interface ParameterView {
    /**
     * The tensor of the weight {@code name}, of its full shape.
     *
     * @throws IllegalArgumentException when this view holds no weight of that name
     */
    Tensor get(String name);
}
