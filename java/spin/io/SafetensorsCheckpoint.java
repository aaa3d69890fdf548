package spin.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The weights of an HF model directory: either one {@code model.safetensors} or shards listed by
 * {@code model.safetensors.index.json} ({@code weight_map}: tensor name to shard file). Every shard is
 * mapped and validated on open; the index must name existing shards, and each tensor must be in
 * the shard the index says and nowhere else.
 */
public final class SafetensorsCheckpoint implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final List<SafetensorsFile> files;
    private final Map<String, TensorEntry> tensors;

    private SafetensorsCheckpoint(List<SafetensorsFile> files, Map<String, TensorEntry> tensors) {
        this.files = files;
        this.tensors = tensors;
    }

    public static boolean existsIn(Path dir) {
        return Files.isRegularFile(dir.resolve(SINGLE_FILE)) || Files.isRegularFile(dir.resolve(INDEX_FILE));
    }

    public static SafetensorsCheckpoint open(Path dir) throws IOException {
        Path single = dir.resolve(SINGLE_FILE);
        Path index = dir.resolve(INDEX_FILE);
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            Map<String, TensorEntry> tensors = new LinkedHashMap<>();
            if (Files.isRegularFile(index)) {
                Map<String, String> weightMap = readWeightMap(index);
                Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
                for (String shard : new java.util.LinkedHashSet<>(weightMap.values())) {
                    Path shardPath = dir.resolve(shard);
                    if (!shardPath.normalize().startsWith(dir.normalize()) || !Files.isRegularFile(shardPath)) {
                        throw new SafetensorsException(index + ": shard \"" + shard + "\" is missing from " + dir);
                    }
                    SafetensorsFile file = SafetensorsFile.open(shardPath);
                    opened.add(file);
                    shards.put(shard, file);
                }
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    tensors.put(e.getKey(), shards.get(e.getValue()).tensor(e.getKey()));
                }
                for (Map.Entry<String, SafetensorsFile> shard : shards.entrySet()) {
                    for (TensorEntry t : shard.getValue().tensors()) {
                        if (!shard.getKey().equals(weightMap.get(t.name()))) {
                            throw new SafetensorsException(shard.getValue().path() + ": tensor \"" + t.name()
                                    + "\" is not mapped to this shard by " + index + "; the index and shards disagree");
                        }
                    }
                }
            } else if (Files.isRegularFile(single)) {
                SafetensorsFile file = SafetensorsFile.open(single);
                opened.add(file);
                for (TensorEntry t : file.tensors()) {
                    tensors.put(t.name(), t);
                }
            } else {
                throw new NoSuchFileException(dir.toString(), null,
                        "no " + SINGLE_FILE + " or " + INDEX_FILE + " in this directory; is it an HF model directory?");
            }
            return new SafetensorsCheckpoint(List.copyOf(opened), tensors);
        } catch (IOException | RuntimeException e) {
            opened.forEach(SafetensorsFile::close);
            throw e;
        }
    }

    private static Map<String, String> readWeightMap(Path index) throws IOException {
        JsonNode root;
        try {
            root = SafetensorsFile.JSON.readTree(Files.readString(index));
        } catch (JsonProcessingException e) {
            throw new SafetensorsException(index + ": not valid JSON (" + e.getOriginalMessage() + ")");
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject() || map.isEmpty()) {
            throw new SafetensorsException(index + ": needs a non-empty object \"weight_map\" of tensor name -> shard file");
        }
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            if (!e.getValue().isTextual()) {
                throw new SafetensorsException(index + ": weight_map[\"" + e.getKey() + "\"] must be a file name");
            }
            weightMap.put(e.getKey(), e.getValue().asText());
        }
        return weightMap;
    }

    /** All tensors by name, in index (or file) order. */
    public Map<String, TensorEntry> tensors() {
        return java.util.Collections.unmodifiableMap(tensors);
    }

    public TensorEntry tensor(String name) throws SafetensorsException {
        TensorEntry t = tensors.get(name);
        if (t == null) {
            throw new SafetensorsException("checkpoint has no tensor \"" + name + "\"");
        }
        return t;
    }

    /** Writes in-memory tensors; see {@link #write(Path, List, SafetensorsWriter.TensorFiller, long)}. */
    public static void write(Path dir, List<TensorEntry> tensors, long maxShardBytes) throws IOException {
        List<SafetensorsWriter.TensorHeader> headers =
                tensors.stream().map(t -> new SafetensorsWriter.TensorHeader(t.name(), t.dtype(), t.shape())).toList();
        write(dir, headers, (index, target) -> target.copyFrom(tensors.get(index).data()), maxShardBytes);
    }

    /**
     * Writes tensors into {@code dir} as one file, or as shards of at most {@code maxShardBytes}
     * (a tensor larger than that gets a shard of its own) with an index; {@code filler} produces
     * each tensor's bytes when its turn comes. Shards are written before the index, each
     * atomically, so a reader never sees an index naming a missing shard.
     */
    public static void write(Path dir, List<SafetensorsWriter.TensorHeader> tensors, SafetensorsWriter.TensorFiller filler,
            long maxShardBytes) throws IOException {
        Files.createDirectories(dir);
        List<List<Integer>> shards = new ArrayList<>();
        List<Integer> current = new ArrayList<>();
        long currentBytes = 0;
        for (int i = 0; i < tensors.size(); i++) {
            long bytes = tensors.get(i).byteSize();
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(i);
            currentBytes += bytes;
        }
        shards.add(current);
        Map<String, String> format = Map.of("format", "pt");
        if (shards.size() == 1) {
            SafetensorsWriter.write(dir.resolve(SINGLE_FILE), tensors, filler, format);
            Files.deleteIfExists(dir.resolve(INDEX_FILE));
            return;
        }
        ObjectNode index = SafetensorsFile.JSON.createObjectNode();
        long total = 0;
        ObjectNode weightMap = SafetensorsFile.JSON.createObjectNode();
        for (int s = 0; s < shards.size(); s++) {
            String name = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
            List<Integer> members = shards.get(s);
            List<SafetensorsWriter.TensorHeader> shardHeaders = members.stream().map(tensors::get).toList();
            SafetensorsWriter.write(dir.resolve(name), shardHeaders, (i, target) -> filler.fill(members.get(i), target), format);
            for (SafetensorsWriter.TensorHeader t : shardHeaders) {
                weightMap.put(t.name(), name);
                total += t.byteSize();
            }
        }
        index.putObject("metadata").put("total_size", total);
        index.set("weight_map", weightMap);
        AtomicFiles.writeString(dir.resolve(INDEX_FILE), index.toPrettyString() + "\n");
        Files.deleteIfExists(dir.resolve(SINGLE_FILE));
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
