package spin.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    @TempDir
    Path dir;

    private static TensorEntry randomEntry(Arena arena, Random rng, String name, SafetensorsDType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long d : shape) {
            bytes *= d;
        }
        MemorySegment data = arena.allocate(Math.max(1, bytes)).asSlice(0, bytes);
        for (long i = 0; i < bytes; i++) {
            data.set(ValueLayout.JAVA_BYTE, i, (byte) rng.nextInt());
        }
        return new TensorEntry(name, dtype, shape, data);
    }

    @Test
    void writeThenReadIsExactForEveryDtype() throws IOException {
        Random rng = new Random(1);
        try (Arena arena = Arena.ofConfined()) {
            List<TensorEntry> written = List.of(
                    randomEntry(arena, rng, "a.weight", SafetensorsDType.F32, 3, 5),
                    randomEntry(arena, rng, "b", SafetensorsDType.BF16, 7),
                    randomEntry(arena, rng, "empty", SafetensorsDType.F16, 0, 4),
                    randomEntry(arena, rng, "scalar", SafetensorsDType.F32));
            Path file = dir.resolve("x.safetensors");
            SafetensorsWriter.write(file, written, Map.of("format", "pt"));
            long headerLength = ByteBuffer.wrap(Files.readAllBytes(file), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(0, headerLength % 8, "data section must start 8-byte aligned");
            try (SafetensorsFile read = SafetensorsFile.open(file)) {
                assertEquals(Map.of("format", "pt"), read.metadata());
                assertEquals(written.size(), read.tensors().size());
                for (TensorEntry w : written) {
                    TensorEntry r = read.tensor(w.name());
                    assertEquals(w.dtype(), r.dtype());
                    assertArrayEquals(w.shape(), r.shape());
                    assertArrayEquals(w.data().toArray(ValueLayout.JAVA_BYTE), r.data().toArray(ValueLayout.JAVA_BYTE), w.name());
                }
            }
            assertTrue(Files.list(dir).noneMatch(p -> p.getFileName().toString().endsWith(".partial")), "no temp file left");
        }
    }

    @Test
    void shardedCheckpointRoundTripsThroughTheIndex() throws IOException {
        Random rng = new Random(2);
        try (Arena arena = Arena.ofConfined()) {
            List<TensorEntry> written = List.of(
                    randomEntry(arena, rng, "w1", SafetensorsDType.F32, 64),
                    randomEntry(arena, rng, "w2", SafetensorsDType.F32, 64),
                    randomEntry(arena, rng, "w3", SafetensorsDType.BF16, 300),
                    randomEntry(arena, rng, "w4", SafetensorsDType.F32, 8));
            SafetensorsCheckpoint.write(dir, written, 600);
            assertTrue(Files.exists(dir.resolve(SafetensorsCheckpoint.INDEX_FILE)));
            assertTrue(Files.exists(dir.resolve("model-00002-of-00003.safetensors")));
            try (SafetensorsCheckpoint read = SafetensorsCheckpoint.open(dir)) {
                assertEquals(List.of("w1", "w2", "w3", "w4"), List.copyOf(read.tensors().keySet()));
                for (TensorEntry w : written) {
                    assertArrayEquals(w.data().toArray(ValueLayout.JAVA_BYTE),
                            read.tensor(w.name()).data().toArray(ValueLayout.JAVA_BYTE));
                }
            }
            // Re-writing as one file replaces the index, so a reader never mixes the two layouts.
            SafetensorsCheckpoint.write(dir, written, Long.MAX_VALUE);
            assertTrue(Files.notExists(dir.resolve(SafetensorsCheckpoint.INDEX_FILE)));
            try (SafetensorsCheckpoint read = SafetensorsCheckpoint.open(dir)) {
                assertEquals(4, read.tensors().size());
            }
        }
    }

    @Test
    void indexNamingAMissingShardOrAWrongShardIsRefused() throws IOException {
        Random rng = new Random(3);
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsCheckpoint.write(dir, List.of(randomEntry(arena, rng, "w1", SafetensorsDType.F32, 64),
                    randomEntry(arena, rng, "w2", SafetensorsDType.F32, 64)), 300);
        }
        Path index = dir.resolve(SafetensorsCheckpoint.INDEX_FILE);
        String original = Files.readString(index);
        Files.writeString(index, original.replace("model-00002-of-00002", "model-00009-of-00002"));
        assertMessage(() -> SafetensorsCheckpoint.open(dir), "shard \"model-00009-of-00002.safetensors\" is missing");
        Files.writeString(index, original.replace("\"w2\" : \"model-00002-of-00002", "\"w2\" : \"model-00001-of-00002"));
        assertMessage(() -> SafetensorsCheckpoint.open(dir), "no tensor named \"w2\"");
        Files.delete(index);
        assertMessage(() -> SafetensorsCheckpoint.open(dir), "no model.safetensors or model.safetensors.index.json");
    }

    // ---------------------------------------------------------------- corrupted files, one per rule

    private Path craft(String header, int dataBytes) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + json.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        Path file = dir.resolve("bad.safetensors");
        Files.write(file, b.array());
        return file;
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable open, String expected) {
        IOException e = assertThrows(IOException.class, open);
        assertTrue(e.getMessage().contains(expected), "message \"" + e.getMessage() + "\" should contain \"" + expected + "\"");
    }

    private void assertRejected(String header, int dataBytes, String expected) throws IOException {
        Path file = craft(header, dataBytes);
        IOException e = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(file).close());
        assertTrue(e.getMessage().contains(expected), "message \"" + e.getMessage() + "\" should contain \"" + expected + "\"");
        assertTrue(e.getMessage().contains(file.toString()), "message must name the file: " + e.getMessage());
    }

    @Test
    void fileShorterThanTheLengthPrefix() throws IOException {
        Path file = dir.resolve("short.safetensors");
        Files.write(file, new byte[] {1, 2, 3});
        assertMessage(() -> SafetensorsFile.open(file), "too short for the 8-byte header length");
    }

    @Test
    void headerLengthPastTheEndOfTheFile() throws IOException {
        Path file = dir.resolve("long.safetensors");
        Files.write(file, ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(4000).array());
        assertMessage(() -> SafetensorsFile.open(file), "runs past the end");
    }

    @Test
    void headerLengthAboveTheFormatLimit() throws IOException {
        Path file = dir.resolve("huge.safetensors");
        Files.write(file, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-5).array());
        assertMessage(() -> SafetensorsFile.open(file), "header length 18446744073709551611 is outside");
    }

    @Test
    void headerThatIsNotJson() throws IOException {
        assertRejected("{\"a\": {\"dtype\": \"F32\", ", 0, "header is not valid JSON");
    }

    @Test
    void headerThatIsNotAnObject() throws IOException {
        assertRejected("[1, 2]  ", 0, "header must be a JSON object");
    }

    @Test
    void duplicateTensorNames() throws IOException {
        assertRejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "Duplicate field 'a'");
    }

    @Test
    void unknownDtype() throws IOException {
        assertRejected("{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "tensor \"w\": dtype \"Q4_K\" is not supported");
    }

    @Test
    void negativeOrFractionalShape() throws IOException {
        assertRejected("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "only non-negative integers");
        assertRejected("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "only non-negative integers");
    }

    @Test
    void missingOffsets() throws IOException {
        assertRejected("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"w\": \"data_offsets\" must be an array of 2 integers");
    }

    @Test
    void byteSpanDisagreeingWithShapeAndDtype() throws IOException {
        assertRejected("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 6 bytes but data_offsets span 8");
    }

    @Test
    void overlappingTensors() throws IOException {
        assertRejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "(overlap)");
    }

    @Test
    void holeBetweenTensors() throws IOException {
        assertRejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "(hole)");
    }

    @Test
    void tensorsPastTheEndOfTheData() throws IOException {
        assertRejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10, "the file is truncated");
    }

    @Test
    void bytesLeftOverAfterTheLastTensor() throws IOException {
        assertRejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, "bytes are left over");
    }

    @Test
    void nonStringMetadata() throws IOException {
        assertRejected("{\"__metadata__\":{\"format\":1}}", 0, "metadata \"format\" must be a string");
    }
}
