/// The whole async server in one object: a loop (`EventBase`) with its `LoopExecutor`, an
/// ``AsyncRouter`` and the `HTTPServer` listening for it.
///
/// ```swift
/// let server = try AsyncHTTPServer(host: "127.0.0.1", port: 8080)
/// server.router.get("/") { request, response in
///     try response.respond(status: 200, body: "hello\n")
/// }
/// try server.run()  // until stop()
/// ```
///
/// Threading: create it, add routes, run and stop it on one thread, the loop's (``stop(reason:)``
/// also from a handler). Ownership: it owns the loop and everything on it.
public final class AsyncHTTPServer {
    /// The loop.
    public let base: EventBase
    /// The loop as an executor: the handlers' Tasks run on it.
    public let executor: LoopExecutor
    /// The routes.
    public let router: AsyncRouter
    /// The evhttp server (bound in `init`).
    public let server: HTTPServer
    private var stopping = false

    /// Creates the loop, the executor, the router and the server, and binds `host`:`port`
    /// (`0`: any free port, see ``addresses``), on the calling thread.
    public init(host: String = "127.0.0.1", port: UInt16, options: HTTPServerOptions = .init()) throws {
        base = try EventBase()
        executor = try LoopExecutor(base: base)
        router = AsyncRouter(executor: executor)
        do {
            server = try HTTPServer(base: base, options: options, responder: router)
            _ = try server.bind(host: host, port: port)
        } catch {
            executor.shutdown()
            throw error
        }
    }

    /// Where the server listens.
    public var addresses: [SocketAddress] { server.addresses }

    /// Runs the loop until ``stop(reason:)`` has ended every handler, then shuts the executor
    /// down. Call it once.
    public func run() throws {
        defer { executor.shutdown() }
        try base.run()
    }

    /// Stops: no new connections, every handler cancelled with `reason`
    /// (``AsyncRequestRunner/cancelAll(reason:)``); once they have all ended, the remaining
    /// connections close and ``run()`` returns. Loop thread.
    public func stop(reason: String = "server shutting down") {
        executor.thread.preconditionOnThread()
        guard !stopping else { return }
        stopping = true
        server.closeListeners()
        let finish: () -> Void = { [unowned self] in
            self.server.close()
            self.base.exit()
        }
        router.runner.onIdle = finish
        router.runner.cancelAll(reason: reason)
        if router.runner.runningCount == 0 { finish() }
    }
}
