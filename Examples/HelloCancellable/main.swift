import EventHTTP
import Logging
import ServiceLifecycle

// Each request's handler runs as a Task on a libevent loop, cancelled when its client leaves.
let router = Router()
router.get("/") { _, context in
    print("\(context.requestID): thinking for 5 s")
    defer { print("\(context.requestID): cleanup runs either way") }
    do {
        // A libevent timer on the request's loop. If the client leaves (FIN, RST, half-close)
        // or the server cancels its handlers, the sleep throws CancellationError at once.
        try await context.executor.sleep(for: .seconds(5))
    } catch {
        print("\(context.requestID): \(context.cancellationReason?.description ?? "\(error)"), work stopped")
        throw error
    }
    return "Hello Gopher!\n"
}

let server = EventHTTPServer(configuration: .init(host: "127.0.0.1", port: 8080, loops: 1), router: router,
                             onServerRunning: { addresses in print("listening on http://\(addresses[0])") })
// SIGTERM or Ctrl+C drains: requests in flight may finish. A second one cancels them at once.
let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint],
                         logger: Logger(label: "hello-cancellable"))
try await group.run()
