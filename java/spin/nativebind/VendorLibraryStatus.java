package spin.nativebind;

import java.util.List;

/** Whether an optional vendor library was found, under which name, and its version. */
public record VendorLibraryStatus(String library, boolean found, String detail) {

    static VendorLibraryStatus found(String library, String loadedName, String version) {
        return new VendorLibraryStatus(library, true, loadedName + ", version " + version);
    }

    static VendorLibraryStatus notFound(String library, List<String> tried) {
        return new VendorLibraryStatus(library, false, "not found (tried " + String.join(", ", tried) + ")");
    }
}
