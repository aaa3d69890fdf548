package spin.dist;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import spin.backend.DeviceSpec;

/**
 * Where this process stands in a run over several devices: how many ranks the run has (one per
 * device), which of them this process drives (consecutive global ranks, one thread each), on which
 * local devices, and where the rendezvous that joins the processes is.
 *
 * <p>A world is resolved once per command by {@link #resolve}: from the launch flags first
 * ({@code --devices}/{@code --gpus}, {@code --nnodes}, {@code --node-rank}, {@code --master-addr},
 * {@code --master-port}), else from the environment torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), else from the one Slurm's srun sets (SLURM_NTASKS,
 * SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID, SLURM_NNODES, SLURM_NTASKS_PER_NODE and the node
 * list), else it is one local process with {@code --devices} (default 1) devices. Two launch
 * shapes come out of it:
 * <ul>
 *   <li><b>a process per device</b> (torchrun {@code --nproc-per-node 8}, srun
 *       {@code --ntasks-per-node 8}): each process is one rank and drives GPU LOCAL_RANK;
 *   <li><b>a process per node</b> ({@code --gpus 8}, with or without a launcher starting one
 *       process per node): each process drives all of its node's devices, a thread each, and holds
 *       the global ranks {@code processIndex * devices ..}.
 * </ul>
 * Every inconsistent input is refused with an {@link IllegalArgumentException} that names the flag
 * or variable and the fix, before anything is opened or listened on.
 *
 * @param worldSize ranks in the run, over all processes (one rank per device)
 * @param firstRank the global rank of this process's first local device; its devices hold
 *     {@code firstRank .. firstRank + localDevices.size() - 1}
 * @param localDevices the devices this process drives, local rank i on {@code localDevices.get(i)};
 *     CPU ranks are each {@code cpu} and emulated ranks each {@code cuda-emu:0} (the emulator has one
 *     device, which several ranks may share)
 * @param nodeRank this process's node, 0 .. nnodes - 1
 * @param nnodes nodes in the run
 * @param masterAddr the host of the rendezvous (the process holding rank 0); unused by a
 *     single-process world
 * @param masterPort its TCP port, 1 .. 65535
 * @param rendezvousTimeout how long the rendezvous waits for every process
 * @param source what the world was resolved from, for messages
 */
public record World(int worldSize, int firstRank, List<DeviceSpec> localDevices, int nodeRank, int nnodes, String masterAddr,
        int masterPort, Duration rendezvousTimeout, Source source) {

    /** torchrun's default port, so that an existing launch line's port means the same here. */
    public static final int DEFAULT_MASTER_PORT = 29500;
    public static final Duration DEFAULT_RENDEZVOUS_TIMEOUT = Duration.ofSeconds(300);

    /** Where a world came from. */
    public enum Source {
        /** no launch flags and no launcher environment: one process, {@code --devices} devices */
        LOCAL("one process"),
        FLAGS("--nnodes/--node-rank"),
        TORCHRUN("torchrun's environment"),
        SLURM("Slurm's environment");

        private final String label;

        Source(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }
    }

    /**
     * The launch flags as given; null means not given. {@code gpus} says the device count came from
     * {@code --gpus}, which also means the devices are GPUs.
     *
     * @param masterPort kept as text so that a bad value is reported like a bad MASTER_PORT
     */
    public record Flags(Integer devices, boolean gpus, Integer nnodes, Integer nodeRank, String masterAddr, String masterPort,
            Integer rendezvousTimeoutSeconds) {
        public static final Flags NONE = new Flags(null, false, null, null, null, null, null);
    }

    public World {
        localDevices = List.copyOf(localDevices);
        if (worldSize < 1 || localDevices.isEmpty() || firstRank < 0 || firstRank + localDevices.size() > worldSize) {
            throw new IllegalArgumentException("ranks " + firstRank + " .. " + (firstRank + localDevices.size() - 1)
                    + " do not fit a world of " + worldSize);
        }
        if (nnodes < 1 || nodeRank < 0 || nodeRank >= nnodes) {
            throw new IllegalArgumentException("node " + nodeRank + " does not exist among " + nnodes + " node(s)");
        }
        requirePort(masterPort, "the master port");
        if (rendezvousTimeout.isNegative() || rendezvousTimeout.isZero()) {
            throw new IllegalArgumentException("the rendezvous timeout must be positive, not " + rendezvousTimeout);
        }
    }

    /** One process on {@code device}: what every command runs as without launch flags or a launcher. */
    public static World local(DeviceSpec device) {
        return new World(1, 0, List.of(device), 0, 1, "127.0.0.1", DEFAULT_MASTER_PORT, DEFAULT_RENDEZVOUS_TIMEOUT, Source.LOCAL);
    }

    /** Ranks this process drives, one thread each. */
    public int localDeviceCount() {
        return localDevices.size();
    }

    /** This process's global ranks, ascending. */
    public int[] ranks() {
        return IntStream.range(firstRank, firstRank + localDevices.size()).toArray();
    }

    /** True when every rank is in this process: no rendezvous, no other process to wait for. */
    public boolean isSingleProcess() {
        return localDevices.size() == worldSize;
    }

    /** True for the process holding rank 0: it serves the rendezvous (and makes the NCCL id). */
    public boolean servesRendezvous() {
        return firstRank == 0;
    }

    /**
     * One line for logs and errors, e.g. "16 ranks (torchrun's environment): ranks 8..15 on node 1
     * of 2 (cuda:0 .. cuda:7), master node0:29500".
     */
    public String describe() {
        String devices = localDevices.size() == 1 ? localDevices.getFirst().toString()
                : localDevices.stream().distinct().count() == 1 ? localDevices.size() + " x " + localDevices.getFirst()
                : localDevices.getFirst() + " .. " + localDevices.getLast();
        String ranks = localDevices.size() == 1 ? "rank " + firstRank : "ranks " + firstRank + ".." + (firstRank + localDevices.size() - 1);
        return worldSize + (worldSize == 1 ? " rank" : " ranks") + " (" + source.label() + "): " + ranks + " on node " + nodeRank
                + " of " + nnodes + " (" + devices + ")" + (isSingleProcess() ? "" : ", master " + masterAddr + ":" + masterPort);
    }

    /**
     * The world of this process, from the launch flags, else the launcher's environment, else one
     * local process.
     *
     * <p>Precedence: {@code --nnodes} makes the flags the whole story (the environment is not
     * read); without it a torchrun environment (WORLD_SIZE set) comes before a Slurm one
     * (SLURM_NTASKS and SLURM_PROCID set), so torchrun started by srun is read as torchrun.
     * {@code --master-addr} and {@code --master-port} override MASTER_ADDR and MASTER_PORT;
     * {@code --devices N} turns a launcher's process into one that drives N devices (one process
     * per node).
     *
     * @param device the kind of device the command runs on ({@code --device}); {@code cuda} or
     *     {@code cuda:0} lets each process take its GPU by local rank, {@code cuda:N} with N > 0
     *     pins one GPU and so fits only a world of one device per node
     * @param env the process environment ({@link System#getenv()}, or a test's map)
     * @throws IllegalArgumentException naming the flag or variable that is wrong or inconsistent and the fix
     */
    public static World resolve(Flags flags, DeviceSpec device, Map<String, String> env) {
        if (flags.devices() != null && flags.devices() < 1) {
            throw new IllegalArgumentException((flags.gpus() ? "--gpus" : "--devices") + " must be >= 1, got " + flags.devices());
        }
        if (flags.gpus() && device.kind() != DeviceSpec.Kind.CUDA) {
            throw new IllegalArgumentException("--gpus runs on GPUs but the device is " + device
                    + "; use --devices " + flags.devices() + " for " + device.kind().prefix() + " ranks, or --device cuda");
        }
        Duration timeout = DEFAULT_RENDEZVOUS_TIMEOUT;
        if (flags.rendezvousTimeoutSeconds() != null) {
            if (flags.rendezvousTimeoutSeconds() < 1) {
                throw new IllegalArgumentException("--rendezvous-timeout must be >= 1 second, got " + flags.rendezvousTimeoutSeconds());
            }
            timeout = Duration.ofSeconds(flags.rendezvousTimeoutSeconds());
        }
        if (flags.nnodes() != null) {
            return fromFlags(flags, device, env, timeout);
        }
        if (flags.nodeRank() != null) {
            throw new IllegalArgumentException("--node-rank " + flags.nodeRank() + " needs --nnodes (how many nodes the run has); "
                    + "add --nnodes N, or drop --node-rank for a run on one node");
        }
        if (env.get("WORLD_SIZE") != null) {
            return fromLauncher(torchrun(env), flags, device, env, timeout);
        }
        if (env.get("SLURM_NTASKS") != null && env.get("SLURM_PROCID") != null) {
            return fromLauncher(slurm(env), flags, device, env, timeout);
        }
        if (flags.masterAddr() != null || flags.masterPort() != null) {
            throw new IllegalArgumentException((flags.masterAddr() != null ? "--master-addr" : "--master-port")
                    + " is for a run over several nodes; add --nnodes N --node-rank R, or drop it for a run on one node");
        }
        int count = flags.devices() == null ? 1 : flags.devices();
        return new World(count, 0, devices(device, count, flags, env), 0, 1, "127.0.0.1", DEFAULT_MASTER_PORT, timeout, Source.LOCAL);
    }

    /** One process per node, as {@code --nnodes} and {@code --node-rank} say; the environment's world is not read. */
    private static World fromFlags(Flags flags, DeviceSpec device, Map<String, String> env, Duration timeout) {
        int nnodes = flags.nnodes();
        if (nnodes < 1) {
            throw new IllegalArgumentException("--nnodes must be >= 1, got " + nnodes);
        }
        if (nnodes > 1 && flags.nodeRank() == null) {
            throw new IllegalArgumentException("--nnodes " + nnodes + " needs --node-rank R (0 on the master node, 1 .. "
                    + (nnodes - 1) + " on the others)");
        }
        int nodeRank = flags.nodeRank() == null ? 0 : flags.nodeRank();
        if (nodeRank < 0 || nodeRank >= nnodes) {
            throw new IllegalArgumentException("--node-rank must be 0 .. " + (nnodes - 1) + " for --nnodes " + nnodes + ", got " + nodeRank);
        }
        if (nnodes > 1 && (flags.masterAddr() == null || flags.masterAddr().isBlank())) {
            throw new IllegalArgumentException("--nnodes " + nnodes + " needs --master-addr HOST, the host name or address of "
                    + "node 0 (every node gives the same one)");
        }
        int port = flags.masterPort() == null ? DEFAULT_MASTER_PORT : port(flags.masterPort(), "--master-port");
        int perNode = flags.devices() == null ? 1 : flags.devices();
        String addr = flags.masterAddr() == null ? "127.0.0.1" : flags.masterAddr().trim();
        return new World(nnodes * perNode, nodeRank * perNode, devices(device, perNode, flags, env), nodeRank, nnodes, addr, port,
                timeout, Source.FLAGS);
    }

    /** A launcher's view of this process: one of {@code processes}, on a node with {@code localProcesses} of them. */
    private record Launch(Source source, int processes, int process, int localRank, Integer localProcesses, int nodeRank, int nnodes,
            String masterAddr, String masterAddrName, String masterPort, String masterPortName) {}

    private static Launch torchrun(Map<String, String> env) {
        int worldSize = envInt(env, "WORLD_SIZE", "torchrun", 1);
        int rank = requiredEnvInt(env, "RANK", "torchrun", 0, "WORLD_SIZE is set");
        if (rank >= worldSize) {
            throw new IllegalArgumentException("RANK=" + rank + " is not below WORLD_SIZE=" + worldSize
                    + " (torchrun's environment); ranks run 0 .. WORLD_SIZE - 1: fix the launch script");
        }
        int localRank = requiredEnvInt(env, "LOCAL_RANK", "torchrun", 0, "WORLD_SIZE is set");
        Integer localWorld = env.get("LOCAL_WORLD_SIZE") == null ? null : envInt(env, "LOCAL_WORLD_SIZE", "torchrun", 1);
        checkLocal(localRank, "LOCAL_RANK", localWorld, "LOCAL_WORLD_SIZE", rank, "RANK", worldSize, "WORLD_SIZE", "torchrun");
        int nnodes = localWorld != null && worldSize % localWorld == 0 ? worldSize / localWorld : 1;
        int nodeRank = env.get("GROUP_RANK") != null ? envInt(env, "GROUP_RANK", "torchrun", 0)
                : localWorld != null ? rank / localWorld : 0;
        if (nodeRank >= nnodes) {
            nnodes = nodeRank + 1; // torchrun's elastic groups need not be equal; the node count is only for messages
        }
        return new Launch(Source.TORCHRUN, worldSize, rank, localRank, localWorld, nodeRank, nnodes, env.get("MASTER_ADDR"),
                "MASTER_ADDR", env.get("MASTER_PORT"), "MASTER_PORT");
    }

    private static Launch slurm(Map<String, String> env) {
        int tasks = envInt(env, "SLURM_NTASKS", "Slurm", 1);
        int procId = envInt(env, "SLURM_PROCID", "Slurm", 0);
        if (procId >= tasks) {
            throw new IllegalArgumentException("SLURM_PROCID=" + procId + " is not below SLURM_NTASKS=" + tasks
                    + " (Slurm's environment); start spin with srun inside the allocation");
        }
        int localId = requiredEnvInt(env, "SLURM_LOCALID", "Slurm", 0, "SLURM_NTASKS and SLURM_PROCID are set");
        Integer perNode = env.get("SLURM_NTASKS_PER_NODE") == null ? null : tasksPerNode(env.get("SLURM_NTASKS_PER_NODE"));
        checkLocal(localId, "SLURM_LOCALID", perNode, "SLURM_NTASKS_PER_NODE", procId, "SLURM_PROCID", tasks, "SLURM_NTASKS", "Slurm");
        int nnodes = env.get("SLURM_NNODES") == null ? 1 : envInt(env, "SLURM_NNODES", "Slurm", 1);
        int nodeId = env.get("SLURM_NODEID") == null ? 0 : envInt(env, "SLURM_NODEID", "Slurm", 0);
        if (nodeId >= nnodes) {
            throw new IllegalArgumentException("SLURM_NODEID=" + nodeId + " is not below SLURM_NNODES=" + nnodes
                    + " (Slurm's environment); start spin with srun inside the allocation");
        }
        String addr = env.get("MASTER_ADDR"), addrName = "MASTER_ADDR";
        if (addr == null) {
            for (String list : new String[] {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"}) {
                if (env.get(list) != null && !env.get(list).isBlank()) {
                    addr = firstHost(env.get(list), list);
                    addrName = list;
                    break;
                }
            }
        }
        String port = env.get("MASTER_PORT");
        return new Launch(Source.SLURM, tasks, procId, localId, perNode, nodeId, nnodes, addr, addrName,
                port == null ? Integer.toString(DEFAULT_MASTER_PORT) : port, port == null ? "the default port" : "MASTER_PORT");
    }

    /** The world of a launcher's process; {@code --devices N} makes it drive N devices. */
    private static World fromLauncher(Launch l, Flags flags, DeviceSpec device, Map<String, String> env, Duration timeout) {
        String addr = flags.masterAddr() != null ? flags.masterAddr().trim() : l.masterAddr();
        int port;
        if (flags.masterPort() != null) {
            port = port(flags.masterPort(), "--master-port");
        } else if (l.masterPort() != null) {
            port = port(l.masterPort(), l.masterPortName() + " (" + l.source().label() + ")");
        } else if (l.processes() > 1) {
            throw new IllegalArgumentException("MASTER_PORT is not set (" + l.source().label() + " with " + l.processes()
                    + " processes); set it, or pass --master-port PORT");
        } else {
            port = DEFAULT_MASTER_PORT;
        }
        if (l.processes() > 1 && (addr == null || addr.isBlank())) {
            throw new IllegalArgumentException(l.source() == Source.SLURM
                    ? "no master address: MASTER_ADDR, SLURM_STEP_NODELIST and SLURM_JOB_NODELIST are all unset (Slurm's environment "
                            + "with " + l.processes() + " tasks); start spin with srun, or set MASTER_ADDR or pass --master-addr HOST"
                    : "MASTER_ADDR is not set (torchrun's environment with WORLD_SIZE=" + l.processes()
                            + "); set it, or pass --master-addr HOST");
        }
        if (addr == null || addr.isBlank()) {
            addr = "127.0.0.1";
        }
        List<DeviceSpec> local;
        int perProcess;
        if (flags.devices() != null) {
            perProcess = flags.devices();
            String count = (flags.gpus() ? "--gpus " : "--devices ") + perProcess;
            if (device.kind() == DeviceSpec.Kind.CUDA && l.localProcesses() != null && l.localProcesses() > 1 && perProcess > 1) {
                throw new IllegalArgumentException(count + " makes each process drive " + perProcess + " GPUs, but "
                        + (l.source() == Source.TORCHRUN ? "LOCAL_WORLD_SIZE" : "SLURM_NTASKS_PER_NODE") + "=" + l.localProcesses()
                        + " processes run on this node and would share them; start one process per node "
                        + (l.source() == Source.TORCHRUN ? "(torchrun --nproc-per-node 1)" : "(srun --ntasks-per-node 1)")
                        + ", or drop " + (flags.gpus() ? "--gpus" : "--devices") + " so that each process drives GPU LOCAL_RANK");
            }
            local = devices(device, perProcess, flags, env);
        } else {
            perProcess = 1;
            local = List.of(deviceOfLocalRank(device, l, env));
        }
        return new World(l.processes() * perProcess, l.process() * perProcess, local, l.nodeRank(), l.nnodes(), addr, port, timeout,
                l.source());
    }

    /** The one device of a process-per-device launch: GPU LOCAL_RANK, or the only GPU CUDA_VISIBLE_DEVICES leaves it. */
    private static DeviceSpec deviceOfLocalRank(DeviceSpec device, Launch l, Map<String, String> env) {
        String localName = l.source() == Source.TORCHRUN ? "LOCAL_RANK" : "SLURM_LOCALID";
        if (device.kind() != DeviceSpec.Kind.CUDA) {
            // CPU ranks are all "cpu"; emulated ranks share the emulator's one device
            return device;
        }
        boolean sharedNode = l.localProcesses() == null ? l.localRank() > 0 : l.localProcesses() > 1;
        if (device.index() > 0) {
            if (sharedNode || l.localRank() > 0) {
                throw new IllegalArgumentException("--device " + device + " names one GPU, but " + l.source().label()
                        + " starts several processes on this node (" + localName + "=" + l.localRank()
                        + "), each driving GPU " + localName + "; use --device cuda");
            }
            return device;
        }
        Integer visible = visibleGpus(env);
        if (visible != null && visible == 1) {
            return new DeviceSpec(DeviceSpec.Kind.CUDA, 0); // the launcher bound this process to its own GPU, which is now GPU 0
        }
        if (visible != null && l.localRank() >= visible) {
            throw new IllegalArgumentException(localName + "=" + l.localRank() + " but CUDA_VISIBLE_DEVICES=" + env.get("CUDA_VISIBLE_DEVICES")
                    + " leaves " + visible + " GPU" + (visible == 1 ? "" : "s") + " visible; start at most " + visible
                    + " processes per node or make more GPUs visible");
        }
        return new DeviceSpec(DeviceSpec.Kind.CUDA, l.localRank());
    }

    /** {@code count} devices of the kind of {@code device}, for one process that drives them all. */
    private static List<DeviceSpec> devices(DeviceSpec device, int count, Flags flags, Map<String, String> env) {
        if (count == 1) {
            return List.of(device);
        }
        String flag = (flags.gpus() ? "--gpus " : "--devices ") + count;
        List<DeviceSpec> out = new ArrayList<>(count);
        switch (device.kind()) {
            case CPU -> {
                for (int i = 0; i < count; i++) {
                    out.add(DeviceSpec.CPU);
                }
            }
            case CUDA_EMU -> {
                // the emulator has one device; its ranks share it, as InProcessCommunicator allows
                for (int i = 0; i < count; i++) {
                    out.add(new DeviceSpec(DeviceSpec.Kind.CUDA_EMU, 0));
                }
            }
            case CUDA -> {
                if (device.index() > 0) {
                    throw new IllegalArgumentException(flag + " with --device " + device + ": that device names one GPU, but "
                            + flag + " drives GPUs 0 .. " + (count - 1) + "; use --device cuda (or set CUDA_VISIBLE_DEVICES to "
                            + "choose which GPUs)");
                }
                Integer visible = visibleGpus(env);
                if (visible != null && visible < count) {
                    throw new IllegalArgumentException(flag + " but CUDA_VISIBLE_DEVICES=" + env.get("CUDA_VISIBLE_DEVICES")
                            + " leaves " + visible + " GPU" + (visible == 1 ? "" : "s") + " visible; ask for at most " + visible
                            + " or make more visible");
                }
                for (int i = 0; i < count; i++) {
                    out.add(new DeviceSpec(DeviceSpec.Kind.CUDA, i));
                }
            }
        }
        return out;
    }

    private static Integer visibleGpus(Map<String, String> env) {
        String visible = env.get("CUDA_VISIBLE_DEVICES");
        if (visible == null || visible.isBlank()) {
            return null;
        }
        return (int) java.util.Arrays.stream(visible.split(",")).filter(s -> !s.isBlank()).count();
    }

    private static void checkLocal(int localRank, String localName, Integer localWorld, String localWorldName, int rank, String rankName,
            int worldSize, String worldName, String launcher) {
        if (localWorld != null && localRank >= localWorld) {
            throw new IllegalArgumentException(localName + "=" + localRank + " is not below " + localWorldName + "=" + localWorld
                    + " (" + launcher + "'s environment); fix the launch script");
        }
        if (localWorld != null && localWorld > worldSize) {
            throw new IllegalArgumentException(localWorldName + "=" + localWorld + " exceeds " + worldName + "=" + worldSize
                    + " (" + launcher + "'s environment); fix the launch script");
        }
        if (localRank > rank) {
            throw new IllegalArgumentException(localName + "=" + localRank + " exceeds " + rankName + "=" + rank
                    + " (" + launcher + "'s environment): a local rank is never above the global one; fix the launch script");
        }
    }

    /** SLURM_NTASKS_PER_NODE as Slurm writes it: "8", or "8(x2)" or "8(x2),4" for unequal nodes (the first node's count). */
    private static int tasksPerNode(String text) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\s*(\\d{1,6})(?:\\(x\\d+\\))?(?:,.*)?").matcher(text);
        if (!m.matches() || Integer.parseInt(m.group(1)) < 1) {
            throw new IllegalArgumentException("SLURM_NTASKS_PER_NODE=" + text + " (Slurm's environment) is not a task count like 8 "
                    + "or 8(x2); start spin with srun inside the allocation");
        }
        return Integer.parseInt(m.group(1));
    }

    /**
     * The first host of a Slurm node list, which Slurm writes compressed: {@code node[01-04,07]}
     * is node01, node02, node03, node04, node07, so its first host is {@code node01} (zero padding
     * as written); {@code a1,b[2-3]} starts with {@code a1}; every bracket of a name
     * ({@code rack[1-2]-gpu[3-4]}) contributes its first value.
     *
     * @param variable the variable it came from, for the message
     */
    public static String firstHost(String nodeList, String variable) {
        String list = nodeList.trim();
        StringBuilder host = new StringBuilder();
        int i = 0;
        while (i < list.length() && list.charAt(i) != ',') {
            char c = list.charAt(i);
            if (c == '[') {
                int close = list.indexOf(']', i);
                if (close < 0) {
                    throw badNodeList(nodeList, variable);
                }
                String first = list.substring(i + 1, close).split(",", -1)[0].split("-", -1)[0].trim();
                if (first.isEmpty() || !first.chars().allMatch(Character::isDigit)) {
                    throw badNodeList(nodeList, variable);
                }
                host.append(first);
                i = close + 1;
            } else if (c == ']' || Character.isWhitespace(c)) {
                throw badNodeList(nodeList, variable);
            } else {
                host.append(c);
                i++;
            }
        }
        if (host.isEmpty()) {
            throw badNodeList(nodeList, variable);
        }
        return host.toString();
    }

    private static IllegalArgumentException badNodeList(String nodeList, String variable) {
        return new IllegalArgumentException(variable + "=" + nodeList + " is not a Slurm node list like node[01-04] or a1,b2; "
                + "set MASTER_ADDR to node 0's host, or pass --master-addr HOST");
    }

    /** A TCP port from text: 1 .. 65535, else an error naming {@code what} (a flag or a variable). */
    public static int port(String text, String what) {
        int port;
        try {
            port = Integer.parseInt(text.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(what + " \"" + text + "\" is not a port number; use a free TCP port 1 .. 65535 "
                    + "(the same on every node), e.g. " + DEFAULT_MASTER_PORT);
        }
        requirePort(port, what);
        return port;
    }

    private static void requirePort(int port, String what) {
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException(what + " " + port + " is not a port number; use a free TCP port 1 .. 65535 "
                    + "(the same on every node), e.g. " + DEFAULT_MASTER_PORT);
        }
    }

    private static int envInt(Map<String, String> env, String name, String launcher, int min) {
        String text = env.get(name).trim();
        int value;
        try {
            value = Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + "=" + env.get(name) + " (" + launcher + "'s environment) is not a whole number; "
                    + "fix the launch script, or unset it and pass the launch flags (--devices, --nnodes, --node-rank)");
        }
        if (value < min) {
            throw new IllegalArgumentException(name + "=" + value + " (" + launcher + "'s environment) must be >= " + min
                    + "; fix the launch script");
        }
        return value;
    }

    private static int requiredEnvInt(Map<String, String> env, String name, String launcher, int min, String because) {
        if (env.get(name) == null) {
            throw new IllegalArgumentException(name + " is not set, but " + because + " (" + launcher + "'s environment); "
                    + "start spin with " + (launcher.equals("Slurm") ? "srun" : "torchrun") + ", or set " + name);
        }
        return envInt(env, name, launcher, min);
    }
}
