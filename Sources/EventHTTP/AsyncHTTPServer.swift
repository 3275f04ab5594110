/// The whole async server in one object: a loop (`EventBase`) with its `LoopExecutor`, an
/// ``AsyncRouter`` and the `LoopHTTPServer` listening for it.
///
/// ```swift
/// let server = try AsyncHTTPServer(host: "127.0.0.1", port: 8080)
/// server.router.get("/") { request, response in
///     try response.respond(status: 200, body: "hello\n")
/// }
/// try server.run()  // until stop()
/// ```
///
/// Threading: create it, add routes, run and stop it on one thread, the loop's (``stop(reason:grace:)``
/// also from a handler). Ownership: it owns the loop and everything on it.
public final class AsyncHTTPServer {
    /// The loop.
    public let base: EventBase
    /// The loop as an executor: the handlers' Tasks run on it.
    public let executor: LoopExecutor
    /// The routes.
    public let router: AsyncRouter
    /// The evhttp server (bound in `init`).
    public let server: LoopHTTPServer
    private var stopping = false
    private var finished = false
    /// Bounds how long ``stop(reason:grace:)`` waits for answers to reach their clients.
    private var graceTimer: Event?

    /// Creates the loop, the executor, the router and the server, and binds `host`:`port`
    /// (`0`: any free port, see ``addresses``), on the calling thread.
    public init(host: String = "127.0.0.1", port: UInt16, options: HTTPServerOptions = .init()) throws {
        base = try EventBase()
        executor = try LoopExecutor(base: base)
        router = AsyncRouter(executor: executor)
        do {
            server = try LoopHTTPServer(base: base, options: options, responder: router)
            _ = try server.bind(host: host, port: port)
        } catch {
            executor.shutdown()
            throw error
        }
    }

    /// Where the server listens.
    public var addresses: [IPEndpoint] { server.addresses }

    /// Runs the loop until ``stop(reason:grace:)`` has ended every handler, then shuts the executor
    /// down. Call it once.
    public func run() throws {
        defer { executor.shutdown() }
        try base.run()
    }

    /// Stops: no new connections, idle keep-alive connections closed, every handler cancelled
    /// with `reason` (``AsyncRequestRunner/cancelAll(reason:)``). A cancelled handler may still
    /// answer (say, `503` with the reason); the connections then close once their last answers
    /// are written, and ``run()`` returns. Connections whose clients do not read their answers
    /// within `grace` are dropped. Loop thread; a second call changes nothing.
    public func stop(reason: String = "server shutting down", grace: Duration = .seconds(2)) {
        executor.thread.preconditionOnThread()
        guard !stopping else { return }
        stopping = true
        // Draining: listeners closed, idle connections closed now, and each busy one closes
        // itself as soon as its answer is written and it turns idle.
        server.beginDraining()
        let previous = server.onConnectionCountChange
        server.onConnectionCountChange = { [unowned self] count in
            previous?(count)
            self.finishIfDone()
        }
        router.runner.onIdle = { [unowned self] in self.finishIfDone() }
        do {
            let timer = try Event(base: base) { [unowned self] _ in self.finish() }
            try timer.add(timeout: grace)
            graceTimer = timer
        } catch {
            // Without the timer a client that never reads could hold the stop for ever: give
            // up the grace period instead.
            router.runner.cancelAll(reason: reason)
            finish()
            return
        }
        router.runner.cancelAll(reason: reason)
        finishIfDone()
    }

    /// Finishes once no handler runs and no connection is open.
    private func finishIfDone() {
        if router.runner.runningCount == 0 && server.connectionCount == 0 { finish() }
    }

    /// Frees what is left and ends ``run()``. Once.
    private func finish() {
        guard !finished else { return }
        finished = true
        graceTimer = nil
        server.close()
        base.exit()
    }
}
