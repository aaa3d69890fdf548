package spin.nativebind;

/** A CUDA driver or runtime version. */
public record CudaVersion(int major, int minor) {

    /** Decodes CUDA's encoding, 1000 * major + 10 * minor (13000 is 13.0). */
    public static CudaVersion decode(int encoded) {
        return new CudaVersion(encoded / 1000, encoded % 1000 / 10);
    }

    @Override
    public String toString() {
        return major + "." + minor;
    }
}
