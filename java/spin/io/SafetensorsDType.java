package spin.io;

import java.util.Arrays;

/** Element types spin reads from and writes to safetensors files, by their header names. */
public enum SafetensorsDType {
    F32(4),
    BF16(2),
    F16(2),
    I32(4),
    I64(8);

    private final int byteSize;

    SafetensorsDType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }

    /** The type named {@code name} in a header, or an error listing what is supported. */
    static SafetensorsDType parse(String name, String where) throws SafetensorsException {
        for (SafetensorsDType t : values()) {
            if (t.name().equals(name)) {
                return t;
            }
        }
        throw new SafetensorsException(where + ": dtype \"" + name + "\" is not supported (spin reads "
                + Arrays.toString(values()) + "); convert the checkpoint to one of them");
    }
}
