package spin.backend.cuda;

import java.lang.foreign.MemorySegment;
import spin.nativebind.CudaEvent;
import spin.nativebind.CudaRuntime;
import spin.nativebind.CudaStream;
import spin.nativebind.DeviceMemory;
import spin.nativebind.PinnedMemory;

/**
 * Uploads that do not wait for the device. Host data is copied into a slot of page-locked memory,
 * and the device copies it from there when its stream reaches the copy (from pageable memory
 * CUDA stages the data itself before returning, which may wait for the device). Each slot has an
 * event recorded right after its copy, and a slot is written again only once that event has
 * completed; the host therefore waits only when it has queued more than {@link #SLOTS} pieces that
 * the device has not copied yet. An upload larger than a slot goes in slot-size pieces, so a
 * checkpoint streams through the ring while the device copies the pieces before.
 *
 * <p>Not thread-safe: its {@link CudaDevice} is used by one thread at a time.
 */
final class StagingRing implements AutoCloseable {
    /**
     * Sized for a training step's uploads (per micro-batch: ids, key mask, targets, positions and
     * the opponent's log-probs, 64 KiB each at 8 x 2 sequences of 1024 tokens) several micro-batches
     * ahead of the device, in 16 MiB of pinned memory per device.
     */
    static final int SLOTS = 128;
    static final long SLOT_BYTES = 128 << 10;

    private final PinnedMemory memory;
    private final CudaEvent[] copied = new CudaEvent[SLOTS];
    private int next;

    /** Allocates the ring's pinned memory and events (once: pinning memory may wait for the device). */
    StagingRing(CudaRuntime runtime) {
        this.memory = runtime.allocatePinned(SLOTS * SLOT_BYTES);
        for (int i = 0; i < SLOTS; i++) {
            copied[i] = runtime.createEvent();
        }
    }

    /**
     * Queues the copy of {@code host} (a heap or native segment, free to reuse on return) into
     * {@code device} (same size) on {@code stream}. Returns how many times it had to wait for a
     * slot's earlier copy to finish.
     */
    int upload(CudaStream stream, MemorySegment device, MemorySegment host) {
        if (device.byteSize() != host.byteSize()) {
            throw new IllegalArgumentException("upload of " + host.byteSize() + " bytes into " + device.byteSize() + " bytes");
        }
        int waits = 0;
        for (long offset = 0; offset < host.byteSize(); offset += SLOT_BYTES) {
            long bytes = Math.min(SLOT_BYTES, host.byteSize() - offset);
            CudaEvent slotFree = copied[next];
            if (!slotFree.isComplete()) {
                slotFree.synchronize();
                waits++;
            }
            MemorySegment slot = memory.segment().asSlice(next * SLOT_BYTES, bytes);
            MemorySegment.copy(host, offset, slot, 0, bytes);
            DeviceMemory.copyFromHost(stream, device.asSlice(offset, bytes), slot);
            slotFree.record(stream);
            next = (next + 1) % SLOTS;
        }
        return waits;
    }

    /** Frees the pinned memory and the events; the copies reading it must have completed. */
    @Override
    public void close() {
        for (CudaEvent event : copied) {
            event.close();
        }
        memory.close();
    }
}
