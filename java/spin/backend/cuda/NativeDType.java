package spin.backend.cuda;

import spin.backend.DType;

/** A floating dtype as the C ABI's {@code enum spin_dtype} (native/include/spin_native.h) numbers it. */
final class NativeDType {
    static final int F32 = 0;
    static final int BF16 = 1;

    private NativeDType() {}

    static int of(DType dtype) {
        return switch (dtype) {
            case F32 -> F32;
            case BF16 -> BF16;
            case I32, F64 -> throw new IllegalArgumentException(dtype + " is not a compute dtype");
        };
    }
}
