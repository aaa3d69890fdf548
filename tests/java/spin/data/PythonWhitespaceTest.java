package spin.data;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PythonWhitespaceTest {
    /** Python 3: [hex(c) for c in range(0x10000) if chr(c).isspace()]. */
    private static final List<Integer> PYTHON_SPACES = List.of(0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
            0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
            0x2028, 0x2029, 0x202f, 0x205f, 0x3000);

    @Test
    void isSpaceAgreesWithPythonOnEveryBmpCharacter() {
        List<Integer> spaces = new ArrayList<>();
        for (int c = 0; c < 0x10000; c++) {
            if (PythonWhitespace.isSpace((char) c)) {
                spaces.add(c);
            }
        }
        assertEquals(PYTHON_SPACES, spaces);
    }

    @Test
    void lstripRemovesOnlyLeadingWhitespace() {
        assertEquals("answer \n", PythonWhitespace.lstrip(" \n\t\u00a0\u3000answer \n"));
        assertEquals("", PythonWhitespace.lstrip(" \n "));
        assertEquals("\u200bx", PythonWhitespace.lstrip("\u200bx"), "a zero-width space is not whitespace to Python");
    }
}
