package spin.nativebind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class VendorLibraryTest {

    @Test
    void cublasVersionsDecode() {
        assertEquals("12.9.1", CublasLt.decodeVersion(120901));
        assertEquals("13.1.0", CublasLt.decodeVersion(130100));
    }

    @Test
    void ncclVersionsDecodeInBothEncodings() {
        assertEquals("2.27.3", Nccl.decodeVersion(22703));
        assertEquals("2.8.4", Nccl.decodeVersion(2804));
    }

    @Test
    void statusNamesTheFileFoundOrEveryNameTried() {
        check(CublasLt.status(), CublasLt.NAMES);
        check(Nccl.status(), Nccl.NAMES);
    }

    private static void check(VendorLibraryStatus status, List<String> names) {
        if (status.found()) {
            assertTrue(names.stream().anyMatch(name -> status.detail().startsWith(name + ", version ")),
                    status.detail());
        } else {
            assertEquals("not found (tried " + String.join(", ", names) + ")", status.detail());
        }
    }
}
