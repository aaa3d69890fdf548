package spin.generate;

/**
 * One prompt to answer.
 *
 * @param key the request's identity: names it in errors and, with the seed, picks its random
 *     stream (the record's index in its dataset, so a record samples the same answer however the
 *     data is split into fractions and batches)
 * @param prompt token ids, at least one
 */
public record GenerationRequest(long key, int[] prompt) {}
