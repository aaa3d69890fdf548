package spin.nativebind;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.Optional;

/**
 * A vendor library that spin binds by name at run time when it is installed (cuBLASLt, NCCL)
 * rather than linking it into libspin_native: the first of {@code names} the dynamic loader can
 * open, kept open for the life of the process.
 */
record OptionalLibrary(String loadedName, SymbolLookup symbols) {

    static Optional<OptionalLibrary> open(List<String> names) {
        for (String name : names) {
            try {
                return Optional.of(new OptionalLibrary(name, SymbolLookup.libraryLookup(name, Arena.global())));
            } catch (IllegalArgumentException notLoadable) {
                // Not installed under this name; the next name may be.
            }
        }
        return Optional.empty();
    }

    Optional<MethodHandle> downcall(String symbol, FunctionDescriptor descriptor) {
        return symbols.find(symbol).map(address -> Linker.nativeLinker().downcallHandle(address, descriptor));
    }
}
