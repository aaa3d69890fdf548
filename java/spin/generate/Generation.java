package spin.generate;

/**
 * What the model answered to one request.
 *
 * @param tokens the sampled tokens, including the stop token that ended them, if any
 */
public record Generation(long key, int[] tokens, FinishReason finish) {}
