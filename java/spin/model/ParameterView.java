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

    /**
     * The matrices {@code names}, adjacent in this order in the buffer and of one column count, as
     * one [sum of their rows, columns] tensor: q, k and v (or their gradients) stacked for one
     * product. The same call gives the same tensor object each time, so a frozen stack stays found
     * ({@link spin.backend.Backend#freezeWeights}).
     *
     * @throws IllegalArgumentException when a name is missing, a weight is not a matrix, the column
     *     counts differ, or a weight does not start where the one before it ends
     */
    Tensor stacked(String... names);
}
