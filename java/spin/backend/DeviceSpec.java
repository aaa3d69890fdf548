package spin.backend;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which device a command runs on, as the user writes it: {@code cpu}, {@code cuda}, {@code cuda:N}
 * (GPU N), {@code cuda-emu} or {@code cuda-emu:N} (the CUDA kernels run by the CPU emulator that CI
 * uses, for checking the GPU code path without a GPU). {@code cuda} alone means GPU 0.
 *
 * @param index the GPU's ordinal; 0 for the CPU
 */
public record DeviceSpec(Kind kind, int index) {
    public enum Kind {
        CPU("cpu"), CUDA("cuda"), CUDA_EMU("cuda-emu");

        private final String prefix;

        Kind(String prefix) {
            this.prefix = prefix;
        }

        public String prefix() {
            return prefix;
        }
    }

    public static final DeviceSpec CPU = new DeviceSpec(Kind.CPU, 0);
    private static final Pattern SPEC = Pattern.compile("(cpu|cuda|cuda-emu)(?::(\\d{1,4}))?");

    public DeviceSpec {
        if (index < 0 || kind == Kind.CPU && index != 0) {
            throw new IllegalArgumentException("device " + kind.prefix() + ":" + index + " does not exist");
        }
    }

    /** Parses a spec; a bad one is an error that lists the accepted forms. */
    public static DeviceSpec parse(String text) {
        Matcher m = SPEC.matcher(text.trim().toLowerCase(Locale.ROOT));
        if (!m.matches() || m.group(1).equals("cpu") && m.group(2) != null) {
            throw new IllegalArgumentException("unknown device \"" + text + "\"; use cpu, cuda, cuda:N (GPU N) or cuda-emu[:N]");
        }
        Kind kind = switch (m.group(1)) {
            case "cpu" -> Kind.CPU;
            case "cuda" -> Kind.CUDA;
            default -> Kind.CUDA_EMU;
        };
        return new DeviceSpec(kind, m.group(2) == null ? 0 : Integer.parseInt(m.group(2)));
    }

    @Override
    public String toString() {
        return kind == Kind.CPU ? "cpu" : kind.prefix() + ":" + index;
    }
}
