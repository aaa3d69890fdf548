package spin.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.backend.DeviceSpec;
import spin.dist.World;

/**
 * The launch flags of the commands that can run on several devices (train, sft, iterate,
 * generate): how many devices this process drives and, for a run over several nodes, where this
 * node stands. Without them the {@link World} comes from the environment torchrun or Slurm set,
 * so existing cluster scripts start spin unchanged; see {@link World#resolve}.
 */
final class LaunchOptions {
    @Spec(Spec.Target.MIXEE)
    private CommandSpec mixee;

    @Option(names = "--devices", paramLabel = "N",
            description = "devices this process drives, one thread each, of the --device kind (cpu ranks, cuda GPUs 0..N-1, "
                    + "or cuda-emu); default 1, or what torchrun/Slurm say")
    Integer devices;

    @Option(names = "--gpus", paramLabel = "N", description = "the same as --devices N --device cuda")
    Integer gpus;

    @Option(names = "--nnodes", paramLabel = "N", description = "nodes in the run, one spin per node (default: 1, or torchrun/Slurm's)")
    Integer nnodes;

    @Option(names = "--node-rank", paramLabel = "R", description = "this node, 0 .. nnodes-1; node 0 serves the rendezvous")
    Integer nodeRank;

    @Option(names = "--master-addr", paramLabel = "HOST", description = "node 0's host name or address (default: MASTER_ADDR, "
            + "or the first host of the Slurm node list)")
    String masterAddr;

    @Option(names = "--master-port", paramLabel = "PORT",
            description = "node 0's rendezvous TCP port (default: MASTER_PORT, else " + World.DEFAULT_MASTER_PORT + ")")
    String masterPort;

    @Option(names = "--rendezvous-timeout", paramLabel = "SECONDS",
            description = "how long node 0 waits for every node, and the others for node 0 (default 300)")
    Integer rendezvousTimeout;

    World.Flags flags() {
        if (devices != null && gpus != null) {
            throw new IllegalArgumentException("--devices and --gpus both say how many devices to drive; give one "
                    + "(--gpus N is --devices N --device cuda)");
        }
        return new World.Flags(gpus != null ? gpus : devices, gpus != null, nnodes, nodeRank, masterAddr, masterPort, rendezvousTimeout);
    }

    /**
     * The {@code --device} value the command runs with: {@code --gpus} means cuda when
     * {@code --device} is not given, and refuses a {@code --device} of another kind.
     *
     * @param device the {@code --device} flag, or null
     * @return the device text to use, or null to keep the command's default (or a config's device key)
     */
    String device(String device) {
        if (gpus == null) {
            return device;
        }
        if (device == null) {
            return "cuda";
        }
        if (DeviceSpec.parse(device).kind() != DeviceSpec.Kind.CUDA) {
            throw new IllegalArgumentException("--gpus " + gpus + " runs on GPUs but --device is " + device + "; use --devices "
                    + gpus + " for " + device + " ranks, or drop --device");
        }
        return device;
    }

    /** The world of this process on devices of the kind of {@code device}, from these flags and the environment. */
    World resolve(DeviceSpec device) {
        return World.resolve(flags(), device, environment());
    }

    /** The environment of the command line ({@link Main#environment}): the process's, or a test's. */
    Map<String, String> environment() {
        return Main.environment(mixee.commandLine());
    }

    /** The flags that were given, as arguments for a command run in-process (iterate). */
    List<String> arguments() {
        List<String> out = new ArrayList<>();
        add(out, "--devices", devices);
        add(out, "--gpus", gpus);
        add(out, "--nnodes", nnodes);
        add(out, "--node-rank", nodeRank);
        add(out, "--master-addr", masterAddr);
        add(out, "--master-port", masterPort);
        add(out, "--rendezvous-timeout", rendezvousTimeout);
        return out;
    }

    private static void add(List<String> out, String flag, Object value) {
        if (value != null) {
            out.addAll(List.of(flag, value.toString()));
        }
    }
}
