package spin.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import spin.backend.DeviceSpec;

/** Resolving the launch: flags, torchrun's and Slurm's environments as those launchers set them, and every bad input. */
class WorldTest {
    private static final DeviceSpec CPU = DeviceSpec.CPU;
    private static final DeviceSpec CUDA = DeviceSpec.parse("cuda");

    private static World.Flags devices(int n) {
        return new World.Flags(n, false, null, null, null, null, null);
    }

    private static World.Flags gpus(int n) {
        return new World.Flags(n, true, null, null, null, null, null);
    }

    private static Map<String, String> env(String... pairs) {
        Map<String, String> env = new HashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            env.put(pairs[i], pairs[i + 1]);
        }
        return env;
    }

    private static List<DeviceSpec> gpusFrom(int first, int count) {
        List<DeviceSpec> out = new ArrayList<>();
        for (int i = first; i < first + count; i++) {
            out.add(new DeviceSpec(DeviceSpec.Kind.CUDA, i));
        }
        return out;
    }

    /** torchrun --nnodes 2 --nproc-per-node 8 as it sets the environment of global rank {@code rank}. */
    private static Map<String, String> torchrunPerGpu(int rank) {
        return env("WORLD_SIZE", "16", "RANK", Integer.toString(rank), "LOCAL_RANK", Integer.toString(rank % 8), "LOCAL_WORLD_SIZE", "8",
                "GROUP_RANK", Integer.toString(rank / 8), "MASTER_ADDR", "node0", "MASTER_PORT", "29400");
    }

    private static String error(World.Flags flags, DeviceSpec device, Map<String, String> env) {
        return assertThrows(IllegalArgumentException.class, () -> World.resolve(flags, device, env)).getMessage();
    }

    @Test
    void withoutFlagsOrALauncherItIsOneLocalRank() {
        World w = World.resolve(World.Flags.NONE, CPU, Map.of("PATH", "/usr/bin"));
        assertEquals(World.local(CPU), w);
        assertEquals(1, w.worldSize());
        assertTrue(w.isSingleProcess());
        assertTrue(w.servesRendezvous());
        assertEquals(World.DEFAULT_RENDEZVOUS_TIMEOUT, w.rendezvousTimeout());
    }

    @Test
    void devicesMakeOneProcessDriveSeveralOfTheDeviceKind() {
        World cpus = World.resolve(devices(3), CPU, Map.of());
        assertEquals(List.of(CPU, CPU, CPU), cpus.localDevices());
        assertEquals(3, cpus.worldSize());
        assertEquals(List.of(0, 1, 2), java.util.Arrays.stream(cpus.ranks()).boxed().toList());
        World gpus = World.resolve(gpus(8), CUDA, Map.of());
        assertEquals(gpusFrom(0, 8), gpus.localDevices());
        assertEquals(World.Source.LOCAL, gpus.source());
        // the emulator has one device: emulated ranks share it
        DeviceSpec emu = DeviceSpec.parse("cuda-emu");
        assertEquals(List.of(emu, emu), World.resolve(devices(2), emu, Map.of()).localDevices());
        // one device may be any GPU
        assertEquals(List.of(DeviceSpec.parse("cuda:3")), World.resolve(devices(1), DeviceSpec.parse("cuda:3"), Map.of()).localDevices());
    }

    @Test
    void torchrunOneProcessPerGpuDrivesGpuLocalRank() {
        World w = World.resolve(World.Flags.NONE, CUDA, torchrunPerGpu(11));
        assertEquals(16, w.worldSize());
        assertEquals(11, w.firstRank());
        assertEquals(List.of(new DeviceSpec(DeviceSpec.Kind.CUDA, 3)), w.localDevices());
        assertEquals(1, w.nodeRank());
        assertEquals(2, w.nnodes());
        assertEquals("node0", w.masterAddr());
        assertEquals(29400, w.masterPort());
        assertEquals(World.Source.TORCHRUN, w.source());
        assertFalse(w.isSingleProcess());
        assertFalse(w.servesRendezvous());
        assertTrue(World.resolve(World.Flags.NONE, CUDA, torchrunPerGpu(0)).servesRendezvous());
        // CPU ranks: each process is one CPU rank
        assertEquals(List.of(CPU), World.resolve(World.Flags.NONE, CPU, torchrunPerGpu(5)).localDevices());
        assertEquals("16 ranks (torchrun's environment): rank 11 on node 1 of 2 (cuda:3), master node0:29400", w.describe());
    }

    @Test
    void aLauncherThatBindsEachProcessToItsGpuLeavesItGpuZero() {
        Map<String, String> env = torchrunPerGpu(11);
        env.put("CUDA_VISIBLE_DEVICES", "3");
        assertEquals(List.of(new DeviceSpec(DeviceSpec.Kind.CUDA, 0)), World.resolve(World.Flags.NONE, CUDA, env).localDevices());
        env.put("CUDA_VISIBLE_DEVICES", "0,1");
        assertEquals("LOCAL_RANK=3 but CUDA_VISIBLE_DEVICES=0,1 leaves 2 GPUs visible; start at most 2 processes per node or make "
                + "more GPUs visible", error(World.Flags.NONE, CUDA, env));
    }

    @Test
    void torchrunOneProcessPerNodeDrivesEveryGpuWithGpus() {
        // torchrun --nnodes 2 --nproc-per-node 1 ... spin train cfg.yaml --gpus 8, on the second node
        Map<String, String> env = env("WORLD_SIZE", "2", "RANK", "1", "LOCAL_RANK", "0", "LOCAL_WORLD_SIZE", "1",
                "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500");
        World w = World.resolve(gpus(8), CUDA, env);
        assertEquals(16, w.worldSize());
        assertEquals(8, w.firstRank());
        assertEquals(gpusFrom(0, 8), w.localDevices());
        assertEquals(1, w.nodeRank());
        assertEquals(2, w.nnodes());
        assertEquals("10.0.0.1", w.masterAddr());
        assertEquals("16 ranks (torchrun's environment): ranks 8..15 on node 1 of 2 (cuda:0 .. cuda:7), master 10.0.0.1:29500",
                w.describe());
    }

    @Test
    void slurmOneTaskPerGpu() {
        // srun --nodes 2 --ntasks-per-node 8: task 9 is the second GPU of the second node
        Map<String, String> env = env("SLURM_NTASKS", "16", "SLURM_PROCID", "9", "SLURM_LOCALID", "1", "SLURM_NODEID", "1",
                "SLURM_NNODES", "2", "SLURM_NTASKS_PER_NODE", "8(x2)", "SLURM_STEP_NODELIST", "gpu[07-08]",
                "SLURM_JOB_NODELIST", "gpu[03,07-08]");
        World w = World.resolve(World.Flags.NONE, CUDA, env);
        assertEquals(16, w.worldSize());
        assertEquals(9, w.firstRank());
        assertEquals(List.of(new DeviceSpec(DeviceSpec.Kind.CUDA, 1)), w.localDevices());
        assertEquals(1, w.nodeRank());
        assertEquals(2, w.nnodes());
        assertEquals("gpu07", w.masterAddr(), "the step's node list comes before the job's");
        assertEquals(World.DEFAULT_MASTER_PORT, w.masterPort());
        assertEquals(World.Source.SLURM, w.source());
        env.remove("SLURM_STEP_NODELIST");
        assertEquals("gpu03", World.resolve(World.Flags.NONE, CUDA, env).masterAddr());
        env.put("MASTER_ADDR", "head");
        env.put("MASTER_PORT", "12345");
        World explicit = World.resolve(World.Flags.NONE, CUDA, env);
        assertEquals("head", explicit.masterAddr());
        assertEquals(12345, explicit.masterPort());
    }

    @Test
    void slurmOneTaskPerNodeWithGpus() {
        // srun --nodes 4 --ntasks-per-node 1 spin train cfg.yaml --gpus 4, on node 2
        Map<String, String> env = env("SLURM_NTASKS", "4", "SLURM_PROCID", "2", "SLURM_LOCALID", "0", "SLURM_NODEID", "2",
                "SLURM_NNODES", "4", "SLURM_NTASKS_PER_NODE", "1", "SLURM_JOB_NODELIST", "node[01-04]");
        World w = World.resolve(gpus(4), CUDA, env);
        assertEquals(16, w.worldSize());
        assertEquals(8, w.firstRank());
        assertEquals(gpusFrom(0, 4), w.localDevices());
        assertEquals(2, w.nodeRank());
        assertEquals(4, w.nnodes());
        assertEquals("node01", w.masterAddr());
    }

    @Test
    void compressedNodeListsGiveTheirFirstHost() {
        assertEquals("node01", World.firstHost("node[01-04]", "SLURM_JOB_NODELIST"));
        assertEquals("node1", World.firstHost("node[1-4,7]", "SLURM_JOB_NODELIST"));
        assertEquals("gpu-007", World.firstHost("gpu-[007,010-012],cpu[1-2]", "SLURM_JOB_NODELIST"));
        assertEquals("a1", World.firstHost("a1,b[2-3]", "SLURM_JOB_NODELIST"));
        assertEquals("rack2-node10", World.firstHost("rack[2-3]-node[10-11]", "SLURM_JOB_NODELIST"));
        assertEquals("solo", World.firstHost("solo", "SLURM_JOB_NODELIST"));
        for (String bad : new String[] {"node[01-", "node[]", "[", ",node1", "node[a-b]"}) {
            String message = assertThrows(IllegalArgumentException.class, () -> World.firstHost(bad, "SLURM_STEP_NODELIST")).getMessage();
            assertEquals("SLURM_STEP_NODELIST=" + bad + " is not a Slurm node list like node[01-04] or a1,b2; set MASTER_ADDR to node "
                    + "0's host, or pass --master-addr HOST", message);
        }
    }

    @Test
    void flagsComeBeforeTheEnvironmentAndTorchrunBeforeSlurm() {
        Map<String, String> both = torchrunPerGpu(3);
        both.putAll(env("SLURM_NTASKS", "2", "SLURM_PROCID", "1", "SLURM_LOCALID", "1", "SLURM_JOB_NODELIST", "x[1-2]"));
        World torchrun = World.resolve(World.Flags.NONE, CUDA, both);
        assertEquals(World.Source.TORCHRUN, torchrun.source());
        assertEquals(3, torchrun.firstRank());
        // --nnodes makes the flags the whole story
        World flags = World.resolve(new World.Flags(4, false, 2, 1, "head", "29600", 30), CPU, both);
        assertEquals(new World(8, 4, List.of(CPU, CPU, CPU, CPU), 1, 2, "head", 29600, Duration.ofSeconds(30), World.Source.FLAGS), flags);
        // --master-addr and --master-port override MASTER_ADDR and MASTER_PORT
        World overridden = World.resolve(new World.Flags(null, false, null, null, "other", "29700", null), CUDA, both);
        assertEquals("other", overridden.masterAddr());
        assertEquals(29700, overridden.masterPort());
        assertEquals(3, overridden.firstRank());
        // --nnodes 1 is one node whatever the environment says
        assertEquals(World.Source.FLAGS, World.resolve(new World.Flags(null, false, 1, null, null, null, null), CPU, both).source());
        assertTrue(World.resolve(new World.Flags(null, false, 1, null, null, null, null), CPU, both).isSingleProcess());
    }

    @Test
    void nodesFromFlags() {
        World node1 = World.resolve(new World.Flags(8, true, 2, 1, "n0", null, null), CUDA, Map.of());
        assertEquals(new World(16, 8, gpusFrom(0, 8), 1, 2, "n0", 29500, World.DEFAULT_RENDEZVOUS_TIMEOUT, World.Source.FLAGS), node1);
        World node0 = World.resolve(new World.Flags(8, true, 2, 0, "n0", null, null), CUDA, Map.of());
        assertTrue(node0.servesRendezvous());
        assertEquals(0, node0.firstRank());
    }

    @Test
    void badPortsAreRefusedNamingWhereTheyCameFrom() {
        Map<String, String> env = torchrunPerGpu(1);
        for (String port : new String[] {"abc", "0", "65536", "-1", ""}) {
            env.put("MASTER_PORT", port);
            String message = error(World.Flags.NONE, CUDA, env);
            assertTrue(message.startsWith("MASTER_PORT (torchrun's environment) "), message);
            assertTrue(message.contains("is not a port number; use a free TCP port 1 .. 65535 (the same on every node), e.g. 29500"),
                    message);
        }
        assertEquals("--master-port \"http\" is not a port number; use a free TCP port 1 .. 65535 (the same on every node), e.g. 29500",
                error(new World.Flags(null, false, 2, 1, "h", "http", null), CPU, Map.of()));
        assertEquals("--master-port 70000 is not a port number; use a free TCP port 1 .. 65535 (the same on every node), e.g. 29500",
                error(new World.Flags(null, false, 2, 1, "h", "70000", null), CPU, Map.of()));
        env.remove("MASTER_PORT");
        assertEquals("MASTER_PORT is not set (torchrun's environment with 16 processes); set it, or pass --master-port PORT",
                error(World.Flags.NONE, CUDA, env));
        assertThrows(IllegalArgumentException.class,
                () -> new World(2, 0, List.of(CPU), 0, 1, "h", 0, Duration.ofSeconds(1), World.Source.FLAGS));
    }

    @Test
    void inconsistentTorchrunEnvironmentsAreRefused() {
        assertEquals("RANK=16 is not below WORLD_SIZE=16 (torchrun's environment); ranks run 0 .. WORLD_SIZE - 1: fix the launch script",
                error(World.Flags.NONE, CUDA, with(torchrunPerGpu(1), "RANK", "16")));
        assertEquals("RANK is not set, but WORLD_SIZE is set (torchrun's environment); start spin with torchrun, or set RANK",
                error(World.Flags.NONE, CUDA, without(torchrunPerGpu(1), "RANK")));
        assertEquals("LOCAL_RANK is not set, but WORLD_SIZE is set (torchrun's environment); start spin with torchrun, or set LOCAL_RANK",
                error(World.Flags.NONE, CUDA, without(torchrunPerGpu(1), "LOCAL_RANK")));
        assertEquals("WORLD_SIZE=two (torchrun's environment) is not a whole number; fix the launch script, or unset it and pass the "
                + "launch flags (--devices, --nnodes, --node-rank)", error(World.Flags.NONE, CUDA, with(torchrunPerGpu(1), "WORLD_SIZE", "two")));
        assertEquals("WORLD_SIZE=0 (torchrun's environment) must be >= 1; fix the launch script",
                error(World.Flags.NONE, CUDA, with(torchrunPerGpu(0), "WORLD_SIZE", "0")));
        assertEquals("LOCAL_RANK=8 is not below LOCAL_WORLD_SIZE=8 (torchrun's environment); fix the launch script",
                error(World.Flags.NONE, CUDA, with(torchrunPerGpu(9), "LOCAL_RANK", "8")));
        assertEquals("MASTER_ADDR is not set (torchrun's environment with WORLD_SIZE=16); set it, or pass --master-addr HOST",
                error(World.Flags.NONE, CUDA, without(torchrunPerGpu(1), "MASTER_ADDR")));
        assertEquals("--device cuda:3 names one GPU, but torchrun's environment starts several processes on this node (LOCAL_RANK=1), "
                + "each driving GPU LOCAL_RANK; use --device cuda", error(World.Flags.NONE, DeviceSpec.parse("cuda:3"), torchrunPerGpu(1)));
        assertEquals("--gpus 8 makes each process drive 8 GPUs, but LOCAL_WORLD_SIZE=8 processes run on this node and would share "
                + "them; start one process per node (torchrun --nproc-per-node 1), or drop --gpus so that each process drives GPU "
                + "LOCAL_RANK", error(gpus(8), CUDA, torchrunPerGpu(1)));
    }

    @Test
    void inconsistentSlurmEnvironmentsAreRefused() {
        Map<String, String> env = env("SLURM_NTASKS", "8", "SLURM_PROCID", "3", "SLURM_LOCALID", "3", "SLURM_NODEID", "0",
                "SLURM_NNODES", "1", "SLURM_NTASKS_PER_NODE", "8");
        assertEquals("no master address: MASTER_ADDR, SLURM_STEP_NODELIST and SLURM_JOB_NODELIST are all unset (Slurm's environment "
                + "with 8 tasks); start spin with srun, or set MASTER_ADDR or pass --master-addr HOST", error(World.Flags.NONE, CUDA, env));
        env.put("SLURM_JOB_NODELIST", "n[1-2]");
        assertEquals("n1", World.resolve(World.Flags.NONE, CUDA, env).masterAddr());
        assertEquals("SLURM_PROCID=8 is not below SLURM_NTASKS=8 (Slurm's environment); start spin with srun inside the allocation",
                error(World.Flags.NONE, CUDA, with(env, "SLURM_PROCID", "8")));
        assertEquals("SLURM_LOCALID is not set, but SLURM_NTASKS and SLURM_PROCID are set (Slurm's environment); start spin with "
                + "srun, or set SLURM_LOCALID", error(World.Flags.NONE, CUDA, without(env, "SLURM_LOCALID")));
        assertEquals("SLURM_NTASKS_PER_NODE=many (Slurm's environment) is not a task count like 8 or 8(x2); start spin with srun "
                + "inside the allocation", error(World.Flags.NONE, CUDA, with(env, "SLURM_NTASKS_PER_NODE", "many")));
        assertEquals("SLURM_NODEID=1 is not below SLURM_NNODES=1 (Slurm's environment); start spin with srun inside the allocation",
                error(World.Flags.NONE, CUDA, with(env, "SLURM_NODEID", "1")));
        assertEquals("SLURM_JOB_NODELIST=n[1- is not a Slurm node list like node[01-04] or a1,b2; set MASTER_ADDR to node 0's host, "
                + "or pass --master-addr HOST", error(World.Flags.NONE, CUDA, with(env, "SLURM_JOB_NODELIST", "n[1-")));
    }

    @Test
    void inconsistentFlagsAreRefused() {
        assertEquals("--node-rank 1 needs --nnodes (how many nodes the run has); add --nnodes N, or drop --node-rank for a run on one node",
                error(new World.Flags(null, false, null, 1, null, null, null), CPU, Map.of()));
        assertEquals("--nnodes 2 needs --node-rank R (0 on the master node, 1 .. 1 on the others)",
                error(new World.Flags(null, false, 2, null, "h", null, null), CPU, Map.of()));
        assertEquals("--node-rank must be 0 .. 1 for --nnodes 2, got 2", error(new World.Flags(null, false, 2, 2, "h", null, null), CPU, Map.of()));
        assertEquals("--nnodes 2 needs --master-addr HOST, the host name or address of node 0 (every node gives the same one)",
                error(new World.Flags(null, false, 2, 0, null, null, null), CPU, Map.of()));
        assertEquals("--nnodes must be >= 1, got 0", error(new World.Flags(null, false, 0, null, null, null, null), CPU, Map.of()));
        assertEquals("--devices must be >= 1, got 0", error(devices(0), CPU, Map.of()));
        assertEquals("--gpus must be >= 1, got -2", error(gpus(-2), CUDA, Map.of()));
        assertEquals("--devices 2 with --device cuda:3: that device names one GPU, but --devices 2 drives GPUs 0 .. 1; use --device "
                + "cuda (or set CUDA_VISIBLE_DEVICES to choose which GPUs)", error(devices(2), DeviceSpec.parse("cuda:3"), Map.of()));
        assertEquals("--gpus runs on GPUs but the device is cpu; use --devices 2 for cpu ranks, or --device cuda", error(gpus(2), CPU, Map.of()));
        assertEquals("--master-addr is for a run over several nodes; add --nnodes N --node-rank R, or drop it for a run on one node",
                error(new World.Flags(null, false, null, null, "h", null, null), CPU, Map.of()));
        assertEquals("--master-port is for a run over several nodes; add --nnodes N --node-rank R, or drop it for a run on one node",
                error(new World.Flags(null, false, null, null, null, "29500", null), CPU, Map.of()));
        assertEquals("--rendezvous-timeout must be >= 1 second, got 0", error(new World.Flags(null, false, null, null, null, null, 0), CPU, Map.of()));
        assertEquals("--gpus 4 but CUDA_VISIBLE_DEVICES=0,1 leaves 2 GPUs visible; ask for at most 2 or make more visible",
                error(gpus(4), CUDA, Map.of("CUDA_VISIBLE_DEVICES", "0,1")));
    }

    private static Map<String, String> with(Map<String, String> env, String key, String value) {
        Map<String, String> out = new HashMap<>(env);
        out.put(key, value);
        return out;
    }

    private static Map<String, String> without(Map<String, String> env, String key) {
        Map<String, String> out = new HashMap<>(env);
        out.remove(key);
        return out;
    }
}
