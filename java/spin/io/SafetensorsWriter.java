package spin.io;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes safetensors files atomically: into a temporary file beside the target, renamed over it
 * only when complete, so a crash never leaves a half-written file under the real name.
 * Tensors are laid out in the order given; the header is padded with spaces to 8 bytes so that
 * the data section starts aligned, as HF's writer does.
 */
public final class SafetensorsWriter {
    private static final int COPY_CHUNK = 1 << 26;

    private SafetensorsWriter() {}

    public static void write(Path path, List<TensorEntry> tensors, Map<String, String> metadata) throws IOException {
        byte[] header = header(tensors, metadata);
        AtomicFiles.write(path, channel -> {
            ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).flip();
            writeFully(channel, length);
            writeFully(channel, ByteBuffer.wrap(header));
            for (TensorEntry t : tensors) {
                for (long at = 0; at < t.data().byteSize(); at += COPY_CHUNK) {
                    long n = Math.min(COPY_CHUNK, t.data().byteSize() - at);
                    writeFully(channel, t.data().asSlice(at, n).asByteBuffer());
                }
            }
        });
    }

    private static byte[] header(List<TensorEntry> tensors, Map<String, String> metadata) throws SafetensorsException {
        ObjectNode root = SafetensorsFile.JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject(SafetensorsFile.METADATA_KEY);
            metadata.forEach(meta::put);
        }
        Set<String> names = new HashSet<>();
        long offset = 0;
        for (TensorEntry t : tensors) {
            if (!names.add(t.name()) || t.name().equals(SafetensorsFile.METADATA_KEY)) {
                throw new SafetensorsException("cannot write tensor \"" + t.name() + "\" twice or under a reserved name");
            }
            long bytes = t.elementCount() * t.dtype().byteSize();
            if (bytes != t.data().byteSize()) {
                throw new SafetensorsException("tensor \"" + t.name() + "\": " + t.data().byteSize()
                        + " bytes of data for a shape that needs " + bytes);
            }
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
