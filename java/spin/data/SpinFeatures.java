package spin.data;

/**
 * A record ready for batching: the prompt followed by the real answer, and the same prompt followed
 * by the generated answer.
 *
 * @param index the record's position in its dataset
 * @param promptLength prompt tokens at the start of both rows (after truncation)
 */
public record SpinFeatures(long index, int promptLength, TokenRow real, TokenRow generated) {}
