public import EventHTTPCore
public import Logging
public import ServiceLifecycle
public import UnixSignals
import EventHTTPSystem
public import HTTPTypes
import Synchronization
#if canImport(FoundationEssentials)
import Foundation
#else
import Foundation
#endif

/// The front door: N libevent loops serving one router, each request's handler cancelled the
/// moment its client leaves, and a graceful shutdown with time bounds.
///
/// ```swift
/// let router = Router()
/// router.get("/hello/{name}") { _, context in "Hello \(try context.parameters.require("name"))!\n" }
/// let server = EventHTTPServer(configuration: .init(port: 8080), router: router, logger: logger)
/// try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
/// ```
///
/// ## Loops
/// ``Configuration/loops`` threads, each with its own `event_base` and listener on the same
/// port (`SO_REUSEPORT`); the kernel spreads connections across them. A request's handler
/// runs as a Task on its connection's loop (no thread hop between libevent and Swift).
///
/// ## Shutdown
/// ``shutdown()`` (or ServiceLifecycle's graceful shutdown): listeners close at once (new
/// connections are refused), idle connections close, a new request on a kept-alive connection
/// gets `503` with `Connection: close`; requests in flight may finish for
/// ``Configuration/shutdownGrace``. Then every handler still running is cancelled with
/// ``CancellationReason/shutdown(_:)`` (a stream can send its last event), and after at most
/// ``Configuration/cancellationGrace`` more whatever is left is closed and ``run()`` returns.
/// ``cancel()`` (or the Task's cancellation, e.g. a second signal) skips the first wait.
///
/// Threading: `Sendable`; ``shutdown()`` and ``cancel()`` from any thread.
public final class EventHTTPServer: Sendable {
    /// What the server listens on and how it answers.
    public struct Configuration: Sendable {
        /// Address to listen on (a name, IPv4 or IPv6 literal).
        public var host: String
        /// Port; `0` picks a free one (see ``EventHTTPServer/addresses``).
        public var port: UInt16
        /// Event loops (threads). Default: the processors online.
        public var loops: Int
        /// Transport limits: body and header sizes, connection limit, timeouts.
        public var transport: HTTPServerOptions
        /// How requests are named (`X-Request-Id`).
        public var requestIDs: RequestIDPolicy
        /// Shapes every error answer.
        public var errorRenderer: ErrorRenderer
        /// Turns an error that is not an ``HTTPError`` into one; default `500 internal server error`.
        public var mapError: @Sendable (any Error) -> HTTPError
        /// How long requests in flight may finish after a shutdown begins.
        public var shutdownGrace: Duration
        /// How long cancelled handlers get to end (and streams to send their last event) before
        /// what is left is closed.
        public var cancellationGrace: Duration
        /// The reason cancelled handlers read, and the body of the drain's `503`.
        public var shutdownMessage: String
        /// Whether the transport's canned answers (evhttp's `400`, `413`, `417`) go through
        /// ``errorRenderer`` (the default) or keep evhttp's own HTML page.
        public var rendersTransportErrors = true
        /// Signals that, arriving while a graceful shutdown is under way, cancel at once (the
        /// "second Ctrl+C"). ServiceGroup refuses a signal that is both graceful and cancelling,
        /// so give it `gracefulShutdownSignals: [.sigterm, .sigint]` and let the server escalate.
        /// Empty: no escalation by signal.
        public var escalationSignals: [UnixSignal] = [.sigterm, .sigint]

        /// A configuration; every limit has a sane default.
        public init(host: String = "127.0.0.1", port: UInt16 = 8080, loops: Int = EventHTTPServer.defaultLoops,
                    transport: HTTPServerOptions = HTTPServerOptions(), requestIDs: RequestIDPolicy = .generate,
                    errorRenderer: ErrorRenderer = .plainText, shutdownGrace: Duration = .seconds(10),
                    cancellationGrace: Duration = .seconds(1), shutdownMessage: String = "server shutting down",
                    mapError: @escaping @Sendable (any Error) -> HTTPError = { _ in HTTPError(.internalServerError, message: "internal server error") }) {
            self.host = host
            self.port = port
            self.loops = loops
            self.transport = transport
            self.requestIDs = requestIDs
            self.errorRenderer = errorRenderer
            self.shutdownGrace = shutdownGrace
            self.cancellationGrace = cancellationGrace
            self.shutdownMessage = shutdownMessage
            self.mapError = mapError
        }

        /// Largest request body (bigger ones get `413`, and no handler runs).
        public var maxBodyBytes: Int {
            get { transport.maxBodyBytes }
            set { transport.maxBodyBytes = newValue }
        }
    }

    /// The processors online: the default number of loops.
    public static var defaultLoops: Int { ProcessResources.onlineProcessorCount }

    private enum Phase {
        case idle, starting, running([EventHTTPLoop]), stopping, stopped
    }

    /// The configuration it was made with.
    public let configuration: Configuration
    let router: any HTTPRouting
    let logger: Logger
    private let onServerRunning: (@Sendable ([IPEndpoint]) -> Void)?
    private let phase = Mutex<Phase>(.idle)
    private let bound = Mutex<[IPEndpoint]>([])
    /// Set by shutdown()/cancel() before the loops exist: applied as they start.
    private let pendingStop = Mutex<Int>(0)

    /// A server for `router`; nothing listens until ``run()``.
    /// - Parameters:
    ///   - configuration: where to listen, how many loops, limits, errors and shutdown bounds.
    ///   - router: the routes (a ``Router``, or any ``HTTPRouting``).
    ///   - logger: the server's logger; each request's logger adds `request_id` to it.
    ///   - onServerRunning: called once every loop listens, with the real addresses.
    public init(configuration: Configuration = Configuration(), router: any HTTPRouting, logger: Logger = Logger(label: "EventHTTP"),
                onServerRunning: (@Sendable ([IPEndpoint]) -> Void)? = nil) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    /// Where the server listens (with real ports), once it runs; empty before and after.
    public var addresses: [IPEndpoint] { bound.withLock { $0 } }

    /// Starts the loops, serves until shut down, and returns once every loop has ended.
    /// Honours ServiceLifecycle's graceful shutdown and Task cancellation (see the type's
    /// documentation).
    /// - Throws: ``EventHTTPServerError`` when it cannot start (the address in use, ...).
    public func run() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await serve()
            } onGracefulShutdown: {
                self.shutdown()
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// Begins the graceful shutdown. Any thread; a second call changes nothing.
    public func shutdown() { stop(level: 1) }

    /// Cancels every handler now and closes within ``Configuration/cancellationGrace``. Any thread.
    public func cancel() { stop(level: 2) }

    /// The task that waits for a second signal during a graceful shutdown.
    private let escalation = Mutex<Task<Void, Never>?>(nil)

    /// Starts waiting for one of ``Configuration/escalationSignals``: the first cancels.
    private func watchForEscalation() {
        let signals = configuration.escalationSignals
        guard !signals.isEmpty else { return }
        escalation.withLock { task in
            guard task == nil else { return }
            // Strong: serve() cancels this task and waits for it before it returns, which ends
            // the reference. (A weak one would leave a side table that LeakSanitizer reports at
            // exit: it cannot see the runtime's encoded pointer to it.)
            task = Task {
                for await signal in await UnixSignalsSequence(trapping: signals) {
                    self.logger.notice("\(signal) during the graceful shutdown: cancelling now")
                    self.cancel()
                    return
                }
            }
        }
    }

    private func stop(level: Int) {
        // The loops are reached under the lock, while the phase holds them: a closure refused by
        // a loop that already stopped is freed here, under the lock, never as the last
        // reference (which would free a worker's events and event_base off its thread); one
        // that runs is freed on the loop's thread. The pending level first: serve() reads it
        // after it makes the phase `.running`, so one of the two sees it.
        pendingStop.withLock { $0 = max($0, level) }
        let running = phase.withLock { phase -> Bool in
            guard case .running(let workers) = phase else { return false }
            for worker in workers {
                // A loop that already finished its drain has shut its executor down: nothing to stop.
                _ = worker.executor.tryExecute { level == 1 ? worker.beginDrain() : worker.cancelRemaining() }
            }
            return true
        }
        // Only while running: serve() ends the watch (and a stop before then is replayed by it).
        if running && level == 1 { watchForEscalation() }
    }

    private func serve() async throws {
        let ok = phase.withLock { phase -> Bool in
            guard case .idle = phase else { return false }
            phase = .starting
            return true
        }
        guard ok else { throw EventHTTPServerError.alreadyRunning }
        if let router = router as? Router { router.freeze() }
        let loops = max(1, configuration.loops)
        var transport = configuration.transport
        transport.reusePort = loops > 1
        let group = HTTPServerGroup()
        let finished = LoopCountdown(count: loops)
        // Each loop thread keeps its worker until serve() has dropped every reference, then
        // releases it itself: a worker's events and event_base may be freed on their thread only.
        let released = DispatchSemaphore(value: 0)
        defer { for _ in 0..<loops { released.signal() } }
        var workers: [EventHTTPLoop] = []
        var port = configuration.port
        do {
            for index in 0..<loops {
                let worker = try await startLoop(index: index, port: port, transport: transport, group: group, finished: finished,
                                                 released: released)
                if index == 0 {
                    port = worker.addresses.first?.port ?? port
                    bound.withLock { $0 = worker.addresses }
                }
                workers.append(worker)
            }
        } catch {
            // Loops that did start are stopped, and waited for, before the error goes out.
            for worker in workers { _ = worker.executor.tryExecute { worker.cancelRemaining() } }
            for _ in workers.count..<loops { finished.arrive() }
            await finished.wait()
            phase.withLock { $0 = .stopped }
            workers.removeAll()
            throw error
        }
        phase.withLock { $0 = .running(workers) }
        logger.debug("listening", metadata: ["addresses": "\(addresses)", "loops": "\(loops)"])
        onServerRunning?(addresses)
        switch pendingStop.withLock({ $0 }) {
        case 1: shutdown()
        case 2: cancel()
        default: break
        }
        await finished.wait()
        let watcher = escalation.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        watcher?.cancel()
        await watcher?.value
        phase.withLock { $0 = .stopped }
        bound.withLock { $0 = [] }
        workers.removeAll()
    }

    /// Starts loop `index` on its own thread; returns once it listens.
    private func startLoop(index: Int, port: UInt16, transport: HTTPServerOptions, group: HTTPServerGroup,
                           finished: LoopCountdown, released: DispatchSemaphore) async throws -> EventHTTPLoop {
        let configuration = configuration, router = router, logger = logger
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<EventHTTPLoop, any Error>) in
            let thread = Thread {
                let worker: EventHTTPLoop
                do {
                    let base = try EventBase()
                    worker = try EventHTTPLoop(base: base, index: index, configuration: configuration, transport: transport,
                                               group: group, router: router, logger: logger)
                    do {
                        try worker.listen(host: configuration.host, port: port)
                    } catch {
                        worker.forceStop()
                        worker.shutdownExecutor()
                        throw error
                    }
                } catch let error as LibeventError {
                    continuation.resume(throwing: EventHTTPServerError(listening: "\(self.configuration.host):\(port)", error))
                    finished.arrive()
                    return
                } catch {
                    continuation.resume(throwing: error)
                    finished.arrive()
                    return
                }
                continuation.resume(returning: worker)
                worker.runLoop()
                finished.arrive()
                // The last reference is this closure's: it goes here, on the loop thread.
                released.wait()
            }
            thread.name = "EventHTTP loop \(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}

extension EventHTTPServer: Service {}

/// Why an ``EventHTTPServer`` could not start.
public struct EventHTTPServerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// Another socket holds the address (`EADDRINUSE`).
        case addressInUse
        /// The host did not resolve, or the address is not this machine's.
        case badAddress
        /// Another failure of the loop or the socket.
        case other
        /// ``EventHTTPServer/run()`` was called on a server that had run.
        case alreadyRunning
    }

    /// What went wrong.
    public let kind: Kind
    /// The address it tried (`host:port`).
    public let address: String
    /// The transport's words.
    public let message: String

    init(listening address: String, _ error: LibeventError) {
        self.address = address
        self.message = error.description
        switch error {
        case .bind(_, let errno) where errno == .addressInUse: kind = .addressInUse
        case .bind(_, let errno) where errno == .addressNotAvailable: kind = .badAddress
        case .addressResolution: kind = .badAddress
        default: kind = .other
        }
    }

    private init(kind: Kind, address: String, message: String) {
        self.kind = kind
        self.address = address
        self.message = message
    }

    static let alreadyRunning = EventHTTPServerError(kind: .alreadyRunning, address: "-", message: "the server already ran; make a new one")

    public var description: String { message }
}

/// Counts loops down to zero and wakes the waiter then.
///
/// Sendable: one Mutex over the count and the waiter.
final class LoopCountdown: Sendable {
    private let state: Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>

    init(count: Int) { state = Mutex((count, nil)) }

    func arrive() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.count -= 1
            guard state.count == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.count <= 0 { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }
}
