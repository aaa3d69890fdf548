package spin.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicReference;
import spin.backend.Backend;
import spin.backend.DeviceSpec;
import spin.backend.Devices;
import spin.backend.Precision;
import spin.generate.Generation;
import spin.generate.GenerationListener;
import spin.generate.GenerationRequest;
import spin.model.KvCache;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.text.Tokenizer;

/**
 * The local devices of {@code spin generate} answering one list of prompts together: a thread per
 * device, each owning its backend, its own copy of the model and its own tokenizer, and doing all
 * of that device's work on that thread (a CUDA device is current per thread, and nothing of one
 * device is shared with another).
 *
 * <p>{@link #generate} gives device d the d-th of N contiguous slices of the requests and puts the
 * answers back in request order. Each request samples from its own stream (seed and key), and on
 * the CPU backend a sequence's logits are the same bits whatever else its batch holds, so the
 * answers, and the shard written from them, are the bytes a single device gives. On GPUs the
 * answers are as batch-independent as the kernels are, the same as for another --batch-size.
 *
 * <p>A failure on one device stops the others at their next model step, and is reported as that
 * device's error (the message starts with the device when there are several).
 */
final class GenerationDevices implements AutoCloseable {
    private record Device(int index, DeviceSpec spec, ExecutorService thread, Backend backend, MistralModel model, Tokenizer tokenizer) {}

    /** Thrown into a device's generation by its listener when another device has failed. */
    private static final class Stopped extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Stopped() {
            super("stopped because another device failed", null, false, false);
        }
    }

    private final List<Device> devices;

    private GenerationDevices(List<Device> devices) {
        this.devices = devices;
    }

    /**
     * Opens every device and loads the model and tokenizer on each, in parallel, each on its own
     * thread. A device that fails closes the ones that opened and is reported.
     *
     * @param cpuThreads CPU threads for each CPU device (0 = every core)
     */
    static GenerationDevices open(List<DeviceSpec> specs, int cpuThreads, Precision precision, Path modelDir) throws IOException {
        List<ExecutorService> threads = new ArrayList<>();
        List<Future<Device>> opening = new ArrayList<>();
        for (int i = 0; i < specs.size(); i++) {
            int index = i;
            DeviceSpec spec = specs.get(i);
            ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "spin-generate-" + index + "-" + spec);
                t.setDaemon(true); // a device stuck in native code must not keep the JVM alive after main has failed
                return t;
            });
            threads.add(thread);
            opening.add(thread.submit(() -> {
                Backend backend = Devices.open(spec, cpuThreads, precision);
                MistralModel model = null;
                try {
                    model = ModelCheckpoint.loadForInference(modelDir, backend);
                    return new Device(index, spec, thread, backend, model, Tokenizer.load(modelDir));
                } catch (Throwable t) {
                    if (model != null) {
                        model.close();
                    }
                    backend.close();
                    throw t;
                }
            }));
        }
        List<Device> opened = new ArrayList<>();
        Throwable failure = null;
        int failed = -1;
        for (int i = 0; i < opening.size(); i++) {
            try {
                opened.add(opening.get(i).get());
            } catch (ExecutionException e) {
                if (failure == null) {
                    failure = e.getCause();
                    failed = i;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = failure == null ? e : failure;
            }
        }
        GenerationDevices group = new GenerationDevices(opened);
        if (failure != null) {
            group.close();
            for (ExecutorService t : threads) {
                t.shutdownNow();
            }
            throw rethrow(failure, specs.size(), failed, failed < 0 ? null : specs.get(failed));
        }
        return group;
    }

    int size() {
        return devices.size();
    }

    /** The model's config (the same on every device). */
    MistralConfig config() {
        return devices.getFirst().model().config();
    }

    /**
     * Answers every request, device d taking the d-th contiguous slice; results in request order.
     * {@code listener} hears every device's steps and answers, one device at a time.
     */
    List<Generation> generate(List<GenerationRequest> requests, GenerationOptions options, GenerationListener listener)
            throws IOException {
        int n = devices.size();
        AtomicReference<Integer> firstFailed = new AtomicReference<>();
        List<Future<List<Generation>>> running = new ArrayList<>(n);
        for (Device d : devices) {
            List<GenerationRequest> slice = requests.subList((int) ((long) requests.size() * d.index() / n),
                    (int) ((long) requests.size() * (d.index() + 1) / n));
            GenerationListener shared = new GenerationListener() {
                @Override
                public void stepDone(StepReport step) {
                    if (firstFailed.get() != null) {
                        throw new Stopped();
                    }
                    synchronized (listener) {
                        listener.stepDone(step);
                    }
                }

                @Override
                public void finished(Generation generation) {
                    synchronized (listener) {
                        listener.finished(generation);
                    }
                }
            };
            running.add(d.thread().submit(() -> {
                if (slice.isEmpty()) {
                    return List.<Generation>of();
                }
                try {
                    long wanted = spin.generate.BatchGenerator.blocksForFullBatch(slice, options.batchSize, options.maxNewTokens,
                            GenerationOptions.BLOCK_SIZE);
                    try (KvCache cache = options.cache(d.model().config(), d.backend(), wanted)) {
                        return options.generator(d.model(), cache, d.tokenizer()).generate(slice, shared);
                    }
                } catch (Throwable t) {
                    if (!(t instanceof Stopped)) {
                        firstFailed.compareAndSet(null, d.index());
                    }
                    throw t;
                }
            }));
        }
        List<Generation> out = new ArrayList<>(requests.size());
        Throwable[] failures = new Throwable[n];
        for (int i = 0; i < n; i++) {
            try {
                out.addAll(running.get(i).get());
            } catch (ExecutionException e) {
                failures[i] = e.getCause();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                firstFailed.compareAndSet(null, i);
                failures[i] = e;
            }
        }
        Integer failed = firstFailed.get();
        if (failed != null) {
            throw rethrow(failures[failed], n, failed, devices.get(failed).spec());
        }
        return out;
    }

    /** Closes every device's model and backend on its own thread, then ends the threads. */
    @Override
    public void close() {
        List<Future<?>> closing = new ArrayList<>();
        for (Device d : devices) {
            closing.add(d.thread().submit(() -> {
                try {
                    d.tokenizer().close();
                    d.model().close();
                } finally {
                    d.backend().close(); // last: the model's tensors live on it
                }
                return null;
            }));
        }
        for (Future<?> f : closing) {
            try {
                f.get();
            } catch (ExecutionException e) {
                // a failure to free memory at the end changes no output; the first error is what the user needs
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        for (Device d : devices) {
            d.thread().shutdown();
        }
    }

    /**
     * The failure of device {@code index} as the command reports it: unchanged with one device;
     * with several, a user error of the same kind whose message starts with the device, or a bug
     * wrapped with it (keeping the stack trace).
     */
    private static IOException rethrow(Throwable t, int count, int index, DeviceSpec spec) {
        if (count == 1 || spec == null) {
            if (t instanceof IOException io) {
                return io;
            }
            if (t instanceof RuntimeException r) {
                throw r;
            }
            if (t instanceof Error e) {
                throw e;
            }
            throw new IllegalStateException(t);
        }
        String label = "device " + index + " (" + spec + "): ";
        if (t instanceof IOException) {
            return new IOException(label + t.getMessage(), t);
        }
        if (t instanceof IllegalArgumentException) {
            throw new IllegalArgumentException(label + t.getMessage(), t);
        }
        if (t instanceof IllegalStateException) {
            throw new IllegalStateException(label + t.getMessage(), t);
        }
        throw new RuntimeException(label + t, t);
    }
}
