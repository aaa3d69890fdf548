package spin.backend;

/** Element types a {@link Tensor} can hold. */
public enum DType {
    F32(4),
    BF16(2),
    I32(4),
    /**
     * fp64 statistics that stay on the backend until the host asks for them: sums, the SPIN
     * loss's statistics, a logging interval's metric sums, a step's gradient norm. Only the ops
     * whose Javadoc names F64 take it; no layer op does.
     */
    F64(8);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }
}
