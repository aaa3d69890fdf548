package spin.backend;

/** {@link Backend#spinLossForward} read back to the host, for tests that check its statistics. */
public final class SpinLossOnHost {
    private SpinLossOnHost() {}

    public static SpinLossStats forward(Backend backend, Tensor policyReal, Tensor policyGenerated, Tensor opponentReal,
            Tensor opponentGenerated, float beta, SpinLossType type) {
        try (Tensor stats = backend.allocate(DType.F64, SpinLossStats.COUNT)) {
            backend.spinLossForward(stats, policyReal, policyGenerated, opponentReal, opponentGenerated, beta, type);
            return SpinLossStats.of(backend.readDoubles(stats));
        }
    }
}
