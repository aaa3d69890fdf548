package spin.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file mapped read-only into memory; tensor data are zero-copy slices of the mapping,
 * valid until {@link #close()}.
 *
 * <p>Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data. Opening
 * validates as strictly as the format's reference implementation: the header length fits the file
 * (and at most 100 MB), the JSON parses to an object without duplicate keys, every entry has a
 * supported dtype, a non-negative shape and {@code data_offsets [begin, end]}, element count times
 * dtype size equals {@code end - begin}, and the offsets tile the data exactly: no overlap, no hole,
 * nothing past the end and nothing left over.
 */
public final class SafetensorsFile implements AutoCloseable {
    static final long MAX_HEADER_BYTES = 100_000_000L;
    static final String METADATA_KEY = "__metadata__";
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final Path path;
    private final Arena arena;
    private final Map<String, TensorEntry> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, Map<String, TensorEntry> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafetensorsFile open(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorEntry> tensors = parse(path, file, metadata);
            return new SafetensorsFile(path, arena, tensors, metadata);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, TensorEntry> parse(Path path, MemorySegment file, Map<String, String> metadata)
            throws SafetensorsException {
        long size = file.byteSize();
        if (size < 8) {
            throw new SafetensorsException(path + ": " + size + " bytes is too short for the 8-byte header length;"
                    + " the file is truncated or not a safetensors file");
        }
        long headerLength = file.get(LE_LONG, 0);
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
            throw new SafetensorsException(path + ": header length " + Long.toUnsignedString(headerLength)
                    + " is outside [0, " + MAX_HEADER_BYTES + "]; the file is corrupt or not a safetensors file");
        }
        if (headerLength > size - 8) {
            throw new SafetensorsException(path + ": header length " + headerLength + " runs past the end of the "
                    + size + "-byte file; the file is truncated");
        }
        byte[] headerBytes = file.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new SafetensorsException(path + ": header is not valid JSON (" + e.getOriginalMessage() + ")");
        }
        if (header == null || !header.isObject()) {
            throw new SafetensorsException(path + ": header must be a JSON object of tensor entries");
        }
        MemorySegment data = file.asSlice(8 + headerLength);
        List<Span> spans = new ArrayList<>();
        for (Map.Entry<String, JsonNode> field : header.properties()) {
            String name = field.getKey();
            if (name.equals(METADATA_KEY)) {
                readMetadata(path, field.getValue(), metadata);
                continue;
            }
            spans.add(readEntry(path, name, field.getValue()));
        }
        List<Span> byOffset = new ArrayList<>(spans);
        byOffset.sort(Comparator.comparingLong(Span::begin).thenComparingLong(Span::end));
        long expected = 0;
        for (Span s : byOffset) {
            if (s.begin != expected) {
                throw new SafetensorsException(path + ": tensor \"" + s.name + "\" starts at byte " + s.begin
                        + " of the data but the previous tensor ends at " + expected + " ("
                        + (s.begin < expected ? "overlap" : "hole") + "); offsets must tile the data exactly");
            }
            expected = s.end;
        }
        if (expected != data.byteSize()) {
            throw new SafetensorsException(path + ": tensors cover " + expected + " bytes but the data section holds "
                    + data.byteSize() + (expected > data.byteSize() ? "; the file is truncated" : "; bytes are left over"));
        }
        Map<String, TensorEntry> tensors = new LinkedHashMap<>();
        for (Span s : spans) {
            tensors.put(s.name, new TensorEntry(s.name, s.dtype, s.shape, data.asSlice(s.begin, s.end - s.begin)));
        }
        return Collections.unmodifiableMap(tensors);
    }

    private record Span(String name, SafetensorsDType dtype, long[] shape, long begin, long end) {}

    private static Span readEntry(Path path, String name, JsonNode entry) throws SafetensorsException {
        String where = path + ": tensor \"" + name + "\"";
        if (!entry.isObject()) {
            throw new SafetensorsException(where + " must be an object with dtype, shape and data_offsets");
        }
        JsonNode dtypeNode = entry.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new SafetensorsException(where + " has no string \"dtype\"");
        }
        SafetensorsDType dtype = SafetensorsDType.parse(dtypeNode.asText(), where);
        long[] shape = nonNegativeLongs(entry.get("shape"), where, "shape", -1);
        long[] offsets = nonNegativeLongs(entry.get("data_offsets"), where, "data_offsets", 2);
        if (offsets[1] < offsets[0]) {
            throw new SafetensorsException(where + ": data_offsets [" + offsets[0] + ", " + offsets[1] + "] end before they begin");
        }
        long elements;
        try {
            elements = 1;
            for (long d : shape) {
                elements = Math.multiplyExact(elements, d);
            }
            elements = Math.multiplyExact(elements, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new SafetensorsException(where + ": shape is too large to address");
        }
        if (elements != offsets[1] - offsets[0]) {
            throw new SafetensorsException(where + ": shape " + java.util.Arrays.toString(shape) + " of " + dtype
                    + " needs " + elements + " bytes but data_offsets span " + (offsets[1] - offsets[0]));
        }
        return new Span(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] nonNegativeLongs(JsonNode node, String where, String key, int requiredLength)
            throws SafetensorsException {
        if (node == null || !node.isArray() || (requiredLength >= 0 && node.size() != requiredLength)) {
            throw new SafetensorsException(where + ": \"" + key + "\" must be an array"
                    + (requiredLength >= 0 ? " of " + requiredLength + " integers" : " of integers"));
        }
        long[] values = new long[node.size()];
        for (int i = 0; i < values.length; i++) {
            JsonNode v = node.get(i);
            if (!v.canConvertToExactIntegral() || !v.canConvertToLong() || v.asLong() < 0) {
                throw new SafetensorsException(where + ": \"" + key + "\" holds " + v + "; only non-negative integers are allowed");
            }
            values[i] = v.asLong();
        }
        return values;
    }

    private static void readMetadata(Path path, JsonNode node, Map<String, String> metadata) throws SafetensorsException {
        if (!node.isObject()) {
            throw new SafetensorsException(path + ": \"" + METADATA_KEY + "\" must be an object of strings");
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw new SafetensorsException(path + ": metadata \"" + e.getKey() + "\" must be a string, got " + e.getValue());
            }
            metadata.put(e.getKey(), e.getValue().asText());
        }
    }

    public Path path() {
        return path;
    }

    /** Tensors in header order. */
    public List<TensorEntry> tensors() {
        return List.copyOf(tensors.values());
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorEntry tensor(String name) throws SafetensorsException {
        TensorEntry e = tensors.get(name);
        if (e == null) {
            throw new SafetensorsException(path + ": no tensor named \"" + name + "\"");
        }
        return e;
    }

    public Map<String, String> metadata() {
        return Collections.unmodifiableMap(metadata);
    }

    @Override
    public void close() {
        arena.close();
    }
}
