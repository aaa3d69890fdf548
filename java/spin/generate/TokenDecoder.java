package spin.generate;

/** Text of token ids, which stop strings are matched against. */
@FunctionalInterface
public interface TokenDecoder {
    String decode(int[] tokens);
}
