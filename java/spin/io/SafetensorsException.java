package spin.io;

import java.io.IOException;

/** A safetensors file or index that is malformed; the message names the file, the tensor and the fix. */
public final class SafetensorsException extends IOException {
    public SafetensorsException(String message) {
        super(message);
    }
}
