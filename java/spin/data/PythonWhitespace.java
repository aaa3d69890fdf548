package spin.data;

/**
 * Python's {@code str.lstrip()}: removes leading characters for which {@code str.isspace()} holds.
 * Java's {@code String.stripLeading} disagrees on a few (no-break spaces, U+001C..U+001F, U+0085),
 * and the converted data must match the reference's byte for byte.
 */
final class PythonWhitespace {
    private PythonWhitespace() {}

    static String lstrip(String s) {
        int i = 0;
        while (i < s.length() && isSpace(s.charAt(i))) {
            i++;
        }
        return s.substring(i);
    }

    /** Python's isspace for one character: Unicode category Zs, or bidirectional class WS, B or S. */
    static boolean isSpace(char c) {
        if (Character.getType(c) == Character.SPACE_SEPARATOR) {
            return true;
        }
        byte bidi = Character.getDirectionality(c);
        return bidi == Character.DIRECTIONALITY_WHITESPACE || bidi == Character.DIRECTIONALITY_PARAGRAPH_SEPARATOR
                || bidi == Character.DIRECTIONALITY_SEGMENT_SEPARATOR;
    }
}
