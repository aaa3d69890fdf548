package spin.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import spin.backend.DeviceSpec;

/**
 * A process of a rendezvous, started by {@link RendezvousTest} as a separate JVM:
 * {@code RendezvousPeer WORLD_SIZE FIRST_RANK COUNT PORT TIMEOUT_MILLIS [PAYLOAD_HEX]}; with a
 * payload it serves (it must hold rank 0), without one it joins. Prints {@code payload HEX} and
 * exits 0, or prints {@code failed MESSAGE} and exits 3.
 */
public final class RendezvousPeer {
    private RendezvousPeer() {}

    public static void main(String[] args) {
        int worldSize = Integer.parseInt(args[0]), first = Integer.parseInt(args[1]), count = Integer.parseInt(args[2]);
        int port = Integer.parseInt(args[3]);
        List<DeviceSpec> devices = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            devices.add(DeviceSpec.CPU);
        }
        World world = new World(worldSize, first, devices, 0, 1, "127.0.0.1", port, Duration.ofMillis(Long.parseLong(args[4])),
                World.Source.FLAGS);
        try {
            byte[] payload = args.length > 5 ? Rendezvous.serve(world, HexFormat.of().parseHex(args[5])) : Rendezvous.join(world);
            System.out.println("payload " + HexFormat.of().formatHex(payload));
            System.exit(0);
        } catch (RendezvousException e) {
            System.out.println("failed " + e.getMessage());
            System.exit(3);
        }
    }
}
