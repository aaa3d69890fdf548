package spin.backend;

import static org.junit.jupiter.api.Assumptions.abort;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/** Opens a device for a test tier, or skips the test with the reason {@code spin info} would give. */
public final class DeviceUnderTest {
    private static final Set<String> REASONS_PRINTED = ConcurrentHashMap.newKeySet();

    private DeviceUnderTest() {}

    /** The device computing in fp32: the tier whose results are held to the CPU's at fp32 tolerances. */
    public static Backend openOrSkip(String spec) {
        return openOrSkip(spec, Precision.FP32);
    }

    public static Backend openOrSkip(String spec, Precision precision) {
        DeviceSpec device = DeviceSpec.parse(spec);
        for (Devices.Listing listing : Devices.list()) {
            if (listing.spec().equals(device) && listing.unavailable().isPresent()) {
                String reason = listing.unavailable().get();
                // Surefire's console lists skipped tests without the reason, so it is printed once here.
                if (REASONS_PRINTED.add(spec)) {
                    System.err.println("[spin " + spec + " tests] skipped: " + reason);
                }
                abort(spec + " test skipped: " + reason);
            }
        }
        return Devices.open(device, 0, precision);
    }
}
