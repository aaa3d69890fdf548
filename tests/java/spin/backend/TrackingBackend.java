package spin.backend;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.List;

/** A view of a backend that records every tensor it allocates, so a test can free them all afterwards. */
final class TrackingBackend {
    private TrackingBackend() {}

    static Backend of(Backend backend, List<Tensor> made) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    Object result;
                    try {
                        result = method.invoke(backend, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (result instanceof Tensor t) {
                        made.add(t);
                    }
                    return result;
                });
    }
}
