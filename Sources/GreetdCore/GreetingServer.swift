import EventHTTP
import EventHTTPContext
import EventHTTPCore
import Logging
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cause every greeting still running gets when the shutdown budget runs out.
public struct ShutdownCause: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "server shutting down" }
}

/// One worker: the greeting server of the seed, on one libevent loop. It wires the pieces: the
/// ``LoopHTTPServer`` (transport), a `Router`, a ``Greeting`` per greeting request (or an
/// `AsyncGreeting`, run by an ``AsyncRequestRunner`` on the loop's ``LoopExecutor``), the
/// `RequestRecorder` (access log, stats, metrics) and the `ShutdownCoordinator`.
///
/// Routes (`Router`): `/` greets, `/healthz` answers `200 ok` while serving and `503` once
/// draining, `/metrics` renders the shared registry. `/` with `Accept: text/event-stream` (or
/// `?stream=1`) streams the greeting as server-sent events; `/?async=1` is the plain greeting as
/// an async handler (both `AsyncGreeting`); those three answer `GET` and `HEAD` (else
/// `405` with `Allow`); any other path gets `404`. Each request is named by the transport
/// (`X-Request-Id`, see ``requestID(number:clientValue:)``) and gets one access-log line.
///
/// ## Lifecycle
/// `serving` → ``beginDrain()`` → `draining` (listeners closed, idle connections closed,
/// greetings in flight go on, new greetings get `503`) → budget spent or ``cancelRemaining()`` →
/// `canceling` (the root context is cancelled with ``ShutdownCause`` and the async greetings'
/// Tasks too; each greeting answers `503`, `Connection: close`, and each stream ends with
/// `event: error`, its connection closed once the stream has ended) → `stopped` once no
/// connection and no handler Task is left, or after the grace period.
///
/// Ownership: the server owns its ``LoopHTTPServer`` (and through it every listener and connection),
/// its root context, its ``executor`` and every in-flight greeting. The ``EventBase`` is the
/// caller's; stop the server (``forceStop()``), then, once the loop has returned,
/// ``shutdownExecutor()``, before the base goes.
///
/// Threading: loop-confined.
public final class GreetingServer: LoopResponder {
    /// The loop everything runs on.
    public let base: EventBase
    /// Counters of this worker, readable from any thread (tests).
    public let stats: GreetdStats
    let metrics: GreetdMetrics
    let configuration: GreetdConfiguration
    let logger: Logger
    let recorder: RequestRecorder
    private let group: WorkerGroup
    private let router = Router()
    private var http: LoopHTTPServer?
    /// The loop as a Swift executor: the async greetings' Tasks run on it.
    public let executor: LoopExecutor
    /// Runs the async greetings (streaming, `?async=1`), cancelling each when its client leaves.
    let runner: AsyncRequestRunner
    /// Greetings thinking, by request number.
    private var inFlight: [UInt64: any InFlightGreeting] = [:]
    /// Outcomes of answers sent without a greeting (a refusal while draining), by request number.
    private var outcomes: [UInt64: RequestOutcome] = [:]
    /// Parent of every request's context; cancelled with ``ShutdownCause`` when the budget ends.
    let root = Context()
    private var shutdown = ShutdownCoordinator()
    /// Events that arrived while an earlier one's actions ran (closing a connection may find the
    /// server idle): handled in order after it, never nested.
    private var shutdownEvents: [ShutdownEvent] = []
    private var shutdownTimer: Event?
    private var memoryTrim: MemoryTrim?
    /// Called once, on the loop thread, when the server has stopped and freed its connections.
    public var onStopped: (() -> Void)?

    /// The worker's phase.
    public var phase: ShutdownPhase { shutdown.phase }

    /// Binds `configuration.host` on `port` and starts accepting on `base`.
    /// - Throws: ``ConfigurationError`` for inconsistent values, ``LibeventError`` when an address
    ///   cannot be bound (the message names it and the reason).
    /// - Parameters:
    ///   - stats: counters to write; they must share `base.counters`' instance (or be new).
    ///   - group: what the service's workers share (connection limit, request numbers, the
    ///     once-per-service shutdown lines); a new one makes this worker stand alone.
    public init(configuration: GreetdConfiguration, logger: Logger, base: EventBase, metrics: GreetdMetrics,
                stats: GreetdStats? = nil, group: WorkerGroup = WorkerGroup(workers: 1), port: UInt16? = nil) throws {
        try configuration.validate()
        self.base = base
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.group = group
        let stats = stats ?? GreetdStats(libevent: base.counters)
        precondition(stats.libevent === base.counters, "stats must count this base's handles")
        self.stats = stats
        recorder = RequestRecorder(logger: logger, stats: stats, metrics: metrics, maxConnections: configuration.http.maxConnections)
        executor = try LoopExecutor(base: base)
        runner = AsyncRequestRunner(executor: executor)
        var options = configuration.http
        options.reusePort = configuration.workers > 1
        let http: LoopHTTPServer
        do {
            http = try LoopHTTPServer(base: base, options: options, group: group.http, responder: self)
        } catch {
            executor.shutdown()
            throw error
        }
        do {
            try http.bind(host: configuration.host, port: port ?? configuration.port)
        } catch {
            http.close()
            executor.shutdown()
            throw error
        }
        runner.onIdle = { [unowned self] in self.checkIdle() }
        runner.onHandlerFailure = { [unowned self] head, failure in
            self.logger.log(.error, request: head.id, "Greeting handler failed: \(failure)")
        }
        http.onConnectionCountChange = { [unowned self] count in
            self.recorder.connectionsChanged(to: count)
            self.checkIdle()
        }
        http.onAcceptError = { [unowned self] code, pause in self.recorder.acceptFailed(code, pause: pause) }
        http.onClosed = { [unowned self] in self.onStopped?() }
        self.http = http
        memoryTrim = try MemoryTrim(base: base) { [unowned self] in self.inFlight.isEmpty }
    }

    deinit {
        precondition(http?.isClosed ?? true, "GreetingServer dropped without forceStop()")
        precondition(executor.isShutDown, "GreetingServer dropped without shutdownExecutor()")
    }

    /// Where the server listens, with real ports.
    public var addresses: [IPEndpoint] { http?.addresses ?? [] }

    // MARK: - Shutdown

    /// Stops accepting, closes idle connections, and lets greetings in flight finish for up to
    /// `shutdownTimeout`; then ``cancelRemaining()``. Idempotent.
    public func beginDrain() { apply(.drain) }

    /// Cancels every greeting still running with cause `server shutting down`: each answers
    /// `503` with `Connection: close`. The server stops when their connections have closed, or
    /// after `shutdownGrace`. Idempotent.
    public func cancelRemaining() { apply(.cancel) }

    /// Frees everything now: listeners, connections (greetings still thinking are cancelled
    /// and log their context error), timers. Safe to call twice, and from anywhere on the loop.
    public func forceStop() {
        apply(.stop)
        http?.close()
    }

    /// Ends the async greetings' executor: runs the jobs still queued (the last steps of Tasks
    /// cancelled by ``forceStop()``) and frees its events. Call it on the loop thread once
    /// ``EventBase/run()`` has returned, after ``forceStop()``. Idempotent.
    public func shutdownExecutor() {
        executor.shutdown()
    }

    /// Runs the coordinator's transition for `event` and carries out its actions; an event that
    /// arrives meanwhile waits for them to finish.
    private func apply(_ event: ShutdownEvent) {
        base.thread.preconditionOnThread()
        shutdownEvents.append(event)
        guard shutdownEvents.count == 1 else { return }
        while let next = shutdownEvents.first {
            perform(next)
            shutdownEvents.removeFirst()
        }
    }

    private func perform(_ event: ShutdownEvent) {
        let inFlightBefore = inFlight.count
        for action in shutdown.handle(event) {
            switch action {
            case .stopAccepting:
                http?.beginDraining()
            case .announce(let phase), .pass(let phase):
                let acted = action == .announce(phase)
                guard let total = group.workerPassed(phase, acted: acted, inFlight: acted ? inFlightBefore : 0) else { break }
                if phase == .draining {
                    logger.notice("Draining: stopped accepting connections", metadata: [
                        "in_flight": "\(total)", "budget": "\(configuration.shutdownTimeout)",
                    ])
                } else {
                    logger.notice("Cancelling greetings in flight", metadata: ["in_flight": "\(total)"])
                }
            case .armBudget:
                arm(after: configuration.shutdownTimeout, .budgetSpent)
            case .cancelGreetings:
                root.cancel(.canceled, cause: ShutdownCause())
                runner.cancelAll(reason: "\(ShutdownCause())")
            case .armGrace:
                arm(after: configuration.shutdownGrace, .graceSpent)
            case .release:
                shutdownTimer = nil
                memoryTrim = nil
                // Frees at once, or at the transport's next safe point; onClosed follows.
                http?.close()
            }
        }
        if event != .idle { checkIdle() }
    }

    /// Applies `event` once `budget` has passed. Should the timer fail (libevent out of memory),
    /// the event is applied at once, after the current one: a budget cut short ends the drain
    /// early, a timer that never fires would leave it waiting forever.
    private func arm(after budget: GoDuration, _ event: ShutdownEvent) {
        do {
            let timer = try Event(base: base) { [unowned self] _ in self.apply(event) }
            try timer.add(timeout: budget.duration)
            shutdownTimer = timer
        } catch {
            shutdownTimer = nil
            logger.error("Cannot arm the shutdown timer; skipping the wait", metadata: ["event": "\(event)", "error": "\(error)"])
            apply(event)  // queued behind the event being handled (see apply)
        }
    }

    /// Once stopping, stops as soon as no greeting, no handler Task and no connection is left.
    private func checkIdle() {
        guard phase == .draining || phase == .canceling, inFlight.isEmpty, runner.runningCount == 0,
              (http?.connectionCount ?? 0) == 0 else { return }
        apply(.idle)
    }

    // MARK: - LoopResponder

    /// The client's `X-Request-Id` when it sent a sane one (so a client or a proxy can follow
    /// its request through the log), else the request's number.
    public func requestID(number: UInt64, clientValue: String?) -> String {
        clientValue.flatMap(acceptableRequestID) ?? "\(number)"
    }

    /// Routes a request.
    public func handle(_ request: LoopRequest) {
        switch router.route(request.method, request.path) {
        case .greeting:
            guard phase == .serving else {
                send(request, status: 503, headers: [("Retry-After", "1")], body: "server shutting down\n", outcome: .rejected)
                return
            }
            startGreeting(request)
        case .health:
            if phase == .serving {
                send(request, status: 200, body: "ok\n")
            } else {
                send(request, status: 503, body: "draining\n")
            }
        case .metrics:
            send(request, status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: metrics.render())
        case .methodNotAllowed(let path, let allow):
            send(request, status: 405, headers: [("Allow", allow)], body: Router.methodNotAllowedBody(request.method, path: path))
        case .notFound:
            send(request, status: 404, body: "404 page not found\n")
        }
    }

    /// A request ended: its greeting (if any) learns why and leaves the in-flight table, and the
    /// recorder writes the access line and counts it.
    public func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        runner.requestEnded(head, end)  // cancels an async greeting's Task on an abort
        var outcome = outcomes.isEmpty ? nil : outcomes.removeValue(forKey: head.number)  // no hashing when empty
        if let greeting = inFlight.removeValue(forKey: head.number) {
            if case .aborted(let reason) = end { greeting.clientWentAway(reason) }
            outcome = greeting.outcome ?? .canceled
        }
        recorder.requestEnded(head, end, outcome: outcome)
        if inFlight.isEmpty { memoryTrim?.schedule() }
        checkIdle()
    }

    private func startGreeting(_ request: LoopRequest) {
        let query: RawGreetingQuery
        let parameters: GreetingQuery
        do {
            query = try RawGreetingQuery(request.query)
            parameters = try query.resolve(configuration)
        } catch {
            send(request, status: 400, body: "\(error)\n")
            return
        }
        let kind = GreetingKind(request, query: query)
        if kind == .events && request.method == .head {
            // The headers only, at once: there is no body to think about.
            var headers = eventStreamHeaders
            if parameters.delayWasCapped { headers.append((cappedDelayHeader, "\(parameters.delay)")) }
            request.startStream(status: 200, headers: headers)
            request.endStream()
            return
        }
        guard kind != .timer else {
            let greeting = Greeting(request: request, parameters: parameters, server: self)
            inFlight[request.head.number] = greeting
            recorder.greetingStarted()
            greeting.start()
            return
        }
        do {
            try request.watchForAbort()
        } catch {
            logger.log(.error, request: request.id, "Cannot watch the connection: \(error)")
            send(request, status: 500, body: "internal error: \(error)\n")
            return
        }
        let greeting = AsyncGreeting(head: request.head, mode: kind == .events ? .events : .plain,
                                     parameters: parameters, server: self)
        inFlight[request.head.number] = greeting
        recorder.greetingStarted()
        greeting.start()
        runner.run(request) { [greeting] request, response in await greeting.run(request, response) }
    }

    /// Answers a request, adding `Connection: close` once the server is stopping.
    /// - Parameter outcome: how to count it, for answers that are not a greeting's.
    func send(_ request: LoopRequest, status: Int, headers: [(String, String)] = [], body: String,
              outcome: RequestOutcome? = nil) {
        var headers = headers
        if phase != .serving { headers.append(("Connection", "close")) }
        if let outcome { outcomes[request.head.number] = outcome }
        if !request.respond(status: status, headers: headers, body: body) { outcomes[request.head.number] = nil }
    }
}
