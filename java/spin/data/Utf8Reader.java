package spin.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Decodes strict UTF-8 and, unlike {@link java.io.InputStreamReader} (whose error is only "Input
 * length = 1"), says where a malformed byte sequence is: its byte offset in the stream and its line.
 */
final class Utf8Reader extends Reader {
    /** Malformed UTF-8 at {@code byteOffset} (from 0), on 1-based {@code line}. */
    static final class MalformedException extends IOException {
        final long byteOffset, line;
        final int firstByte;

        MalformedException(long byteOffset, long line, int firstByte) {
            super(String.format("line %d: not valid UTF-8 (byte 0x%02X at byte offset %d)", line, firstByte, byteOffset));
            this.byteOffset = byteOffset;
            this.line = line;
            this.firstByte = firstByte;
        }
    }

    private final InputStream in;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
    private final ByteBuffer bytes = ByteBuffer.allocate(1 << 16).flip();
    private final CharBuffer chars = CharBuffer.allocate(1 << 16).flip();
    /** Stream offset of bytes.position(), and the line it is on. */
    private long offset, line = 1;
    private boolean endOfInput, flushed;

    Utf8Reader(InputStream in) {
        this.in = in;
    }

    @Override
    public int read(char[] target, int off, int len) throws IOException {
        if (len == 0) {
            return 0;
        }
        if (!chars.hasRemaining() && !fill()) {
            return -1;
        }
        int n = Math.min(len, chars.remaining());
        chars.get(target, off, n);
        return n;
    }

    /** Decodes more characters into {@code chars}; false at the end of the stream. */
    private boolean fill() throws IOException {
        chars.clear();
        try {
            while (chars.position() == 0 && !flushed) {
                int start = bytes.position();
                CoderResult result = decoder.decode(bytes, chars, endOfInput);
                for (int i = start; i < bytes.position(); i++) {
                    if (bytes.get(i) == '\n') {
                        line++;
                    }
                }
                offset += bytes.position() - start;
                if (result.isError()) {
                    throw new MalformedException(offset, line, bytes.get(bytes.position()) & 0xFF);
                }
                if (result.isOverflow()) {
                    break;
                }
                if (endOfInput) {
                    decoder.flush(chars);
                    flushed = true;
                } else {
                    bytes.compact();
                    int n = in.read(bytes.array(), bytes.position(), bytes.remaining());
                    if (n < 0) {
                        endOfInput = true;
                    } else {
                        bytes.position(bytes.position() + n);
                    }
                    bytes.flip();
                }
            }
        } finally {
            chars.flip();
        }
        return chars.hasRemaining();
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
