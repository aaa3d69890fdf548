package spin.io;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Writes safetensors files atomically: into a temporary file beside the target, renamed over it
 * only when complete, so a crash never leaves a half-written file under the real name.
 * Tensors are laid out in the order given, metadata in key order; the header is padded with spaces to 8 bytes so that
 * the data section starts aligned, as HF's writer does.
 */
public final class SafetensorsWriter {
    private static final int COPY_CHUNK = 1 << 26;

    private SafetensorsWriter() {}

    public static void write(Path path, List<TensorEntry> tensors, Map<String, String> metadata) throws IOException {
        List<TensorHeader> headers = tensors.stream().map(t -> new TensorHeader(t.name(), t.dtype(), t.shape())).toList();
        write(path, headers, (index, target) -> {
            MemorySegment data = tensors.get(index).data();
            if (data.byteSize() != target.byteSize()) {
                throw new SafetensorsException("tensor \"" + tensors.get(index).name() + "\": " + data.byteSize()
                        + " bytes of data for a shape that needs " + target.byteSize());
            }
            target.copyFrom(data);
        }, metadata);
    }

    /**
     * Streams tensors into a file: {@code filler} produces tensor i's bytes into a buffer of exactly
     * its size, one tensor at a time, so a checkpoint never has to sit in memory whole.
     */
    public static void write(Path path, List<TensorHeader> tensors, TensorFiller filler, Map<String, String> metadata)
            throws IOException {
        byte[] header = header(tensors, metadata);
        AtomicFiles.write(path, channel -> {
            ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).flip();
            writeFully(channel, length);
            writeFully(channel, ByteBuffer.wrap(header));
            for (int i = 0; i < tensors.size(); i++) {
                long bytes = tensors.get(i).byteSize();
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment buffer = arena.allocate(Math.max(1, bytes)).asSlice(0, bytes);
                    filler.fill(i, buffer);
                    for (long at = 0; at < bytes; at += COPY_CHUNK) {
                        writeFully(channel, buffer.asSlice(at, Math.min(COPY_CHUNK, bytes - at)).asByteBuffer());
                    }
                }
            }
        });
    }

    /** Name, dtype and shape of a tensor to be written. */
    public record TensorHeader(String name, SafetensorsDType dtype, long[] shape) {
        public long byteSize() {
            long n = dtype.byteSize();
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }
    }

    /** Writes the bytes of tensor {@code index} into {@code target}. */
    @FunctionalInterface
    public interface TensorFiller {
        void fill(int index, MemorySegment target) throws IOException;
    }

    private static byte[] header(List<TensorHeader> tensors, Map<String, String> metadata) throws SafetensorsException {
        ObjectNode root = SafetensorsFile.JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject(SafetensorsFile.METADATA_KEY);
            new TreeMap<>(metadata).forEach(meta::put); // in key order: the same bytes whatever the map's order
        }
        Set<String> names = new HashSet<>();
        long offset = 0;
        for (TensorHeader t : tensors) {
            if (!names.add(t.name()) || t.name().equals(SafetensorsFile.METADATA_KEY)) {
                throw new SafetensorsException("cannot write tensor \"" + t.name() + "\" twice or under a reserved name");
            }
            long bytes = t.byteSize();
            ObjectNode entry = root.putObject(t.name());
            entry.put("dtype", t.dtype().name());
            ArrayNode shape = entry.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            entry.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = root.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] header = new byte[padded];
        java.util.Arrays.fill(header, (byte) ' ');
        System.arraycopy(json, 0, header, 0, json.length);
        return header;
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }
}
