package spin.nativebind;

/** What {@link CudaRuntime#deviceProperties} reports about one GPU. */
public record DeviceProperties(int index, String name, long totalMemoryBytes, long freeMemoryBytes,
        int computeMajor, int computeMinor, int multiprocessorCount) {

    /** "9.0" for a Hopper H100. */
    public String computeCapability() {
        return computeMajor + "." + computeMinor;
    }
}
