package spin.backend;

/** Element types a {@link Tensor} can hold. */
public enum DType {
    F32(4),
    BF16(2),
    I32(4);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }
}
