import EventHTTP
import EventHTTPSystem
import Logging
import Metrics

// Helpers of the front-door tests: a real EventHTTPServer on 127.0.0.1 port 0, run the way a
// user runs it (`Task { try await server.run() }`, the port from `onServerRunning`), and
// capturing log and metrics backends. `Probe` and `read(_:until:)` come from Support.swift.

/// A running ``EventHTTPServer`` and the Task that runs it.
final class FrontDoorServer: Sendable {
    let server: EventHTTPServer
    let port: UInt16
    let task: Task<Void, any Error>

    private init(server: EventHTTPServer, port: UInt16, task: Task<Void, any Error>) {
        self.server = server
        self.port = port
        self.task = task
    }

    /// Starts a server for `router` on 127.0.0.1, port 0, and returns once it listens.
    static func start(_ router: any HTTPRouting, configuration: EventHTTPServer.Configuration = .frontDoorTest,
                      logger: Logger = Logger(label: "FrontDoorTests")) async throws -> FrontDoorServer {
        var configuration = configuration
        configuration.host = "127.0.0.1"
        let (ports, continuation) = AsyncStream<UInt16>.makeStream()
        let server = EventHTTPServer(configuration: configuration, router: router, logger: logger) { addresses in
            continuation.yield(addresses.first?.port ?? 0)
            continuation.finish()
        }
        let task = Task {
            defer { continuation.finish() }
            try await server.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port != 0 else {
            try await task.value  // the start failure, if run() threw
            throw TestFailure("the server stopped before it listened")
        }
        return FrontDoorServer(server: server, port: port, task: task)
    }

    /// A client connected to the server.
    func connect(timeout: Duration = .seconds(10)) throws -> LoopbackConnection {
        try LoopbackConnection(port: port, timeout: timeout)
    }

    /// One request on a fresh connection (`Connection: close` is added), its whole response.
    func exchange(_ method: String = "GET", _ target: String, headers: [String] = [], body: String? = nil) async throws -> HTTPReply {
        let connection = try connect()
        var text = "\(method) \(target) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        for header in headers { text += header + "\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        try connection.send(text)
        return try await connection.readResponse(requestMethod: method)
    }

    /// Graceful shutdown, then waits for `run()` to return.
    func stop() async throws {
        server.shutdown()
        try await task.value
    }
}

extension EventHTTPServer.Configuration {
    /// Port 0, one loop, short graces: the tests' servers.
    static var frontDoorTest: Self {
        .init(host: "127.0.0.1", port: 0, loops: 1, shutdownGrace: .seconds(5), cancellationGrace: .seconds(2))
    }
}

/// Runs `body` against a server for `router`, and shuts the server down after it, also when it throws.
func withServer(_ router: any HTTPRouting, configuration: EventHTTPServer.Configuration = .frontDoorTest,
                logger: Logger = Logger(label: "FrontDoorTests"),
                _ body: (FrontDoorServer) async throws -> Void) async throws {
    let running = try await FrontDoorServer.start(router, configuration: configuration, logger: logger)
    do {
        try await body(running)
    } catch {
        running.server.cancel()
        _ = try? await running.task.value
        throw error
    }
    try await running.stop()
}

/// A JSON error renderer: `{"error":{"message":...,"status":...,"request_id":...,"origin":...}}`.
let jsonErrorRenderer = ErrorRenderer { answer in
    func quoted(_ text: String) -> String {
        "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
    let body = "{\"error\":{\"message\":\(quoted(answer.message)),\"status\":\(answer.status.code),"
        + "\"request_id\":\(quoted(answer.requestID)),\"kind\":\(quoted(answer.kind ?? "-")),\"origin\":\(quoted("\(answer.origin)"))}}"
    return ("application/json", body)
}

/// One log record a ``CapturingLogHandler`` kept.
struct LogRecord: Sendable {
    let level: Logger.Level
    let message: String
    let metadata: Logger.Metadata
}

/// Log records, shared by the handlers of one test's logger.
final class LogStore: Sendable {
    private let records = Lock<[LogRecord]>([])
    func append(_ record: LogRecord) { records.withLock { $0.append(record) } }
    var all: [LogRecord] { records.withLock { $0 } }
}

/// A swift-log backend handing every record (its metadata merged with the handler's) to `sink`.
struct CapturingLogHandler: LogHandler {
    let sink: @Sendable (LogRecord) -> Void
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Keeps every record in `store`.
    init(store: LogStore) { sink = { store.append($0) } }

    /// Hands every record to `sink`.
    init(sink: @escaping @Sendable (LogRecord) -> Void) { self.sink = sink }

    func log(event: LogEvent) {
        sink(LogRecord(level: event.level, message: event.message.description,
                       metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
    }
}

/// A metric a ``CapturingMetricsFactory`` made: its label, dimensions and recorded values.
final class CapturedMetric: CounterHandler, TimerHandler, RecorderHandler, FloatingPointCounterHandler, MeterHandler,
    @unchecked Sendable
{
    // @unchecked: every member is behind `values`' lock or immutable.
    let label: String
    let dimensions: [(String, String)]
    private let values = Lock<[Double]>([])

    init(label: String, dimensions: [(String, String)]) {
        self.label = label
        self.dimensions = dimensions
    }

    var recorded: [Double] { values.withLock { $0 } }
    func dimension(_ name: String) -> String? { dimensions.first { $0.0 == name }?.1 }

    func increment(by amount: Int64) { values.withLock { $0.append(Double(amount)) } }
    func increment(by amount: Double) { values.withLock { $0.append(amount) } }
    func decrement(by amount: Double) { values.withLock { $0.append(-amount) } }
    func reset() {}
    func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(Double(duration)) } }
    func record(_ value: Int64) { values.withLock { $0.append(Double(value)) } }
    func record(_ value: Double) { values.withLock { $0.append(value) } }
    func set(_ value: Int64) { record(value) }
    func set(_ value: Double) { record(value) }
}

/// A metrics backend for one test, bound with swift-metrics' task-local `withMetricsFactory`
/// (so no process-wide `MetricsSystem.bootstrap`, which may run only once).
final class CapturingMetricsFactory: MetricsFactory, Sendable {
    private let made = Lock<[CapturedMetric]>([])

    var metrics: [CapturedMetric] { made.withLock { $0 } }

    private func make(_ label: String, _ dimensions: [(String, String)]) -> CapturedMetric {
        let metric = CapturedMetric(label: label, dimensions: dimensions)
        made.withLock { $0.append(metric) }
        return metric
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { make(label, dimensions) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        make(label, dimensions)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { make(label, dimensions) }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { make(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { make(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

/// Middleware that records `name` before and after the rest of the chain (`name>` and `<name`).
struct TraceMiddleware: Middleware {
    let name: String
    let trace: Lock<[String]>

    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) async throws -> Response) async throws -> Response {
        trace.withLock { $0.append("\(name)>") }
        let response = try await next(request, context)
        trace.withLock { $0.append("<\(name)") }
        return response
    }
}

/// Middleware that binds `factory` as the task-local metrics factory around the rest of the chain.
struct MetricsFactoryMiddleware: Middleware {
    let factory: CapturingMetricsFactory

    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) async throws -> Response) async throws -> Response {
        try await withMetricsFactory(factory) { try await next(request, context) }
    }
}

/// Reads `connection` until `done` holds for everything read (`previous` included); returns it.
func read(_ connection: LoopbackConnection, after previous: String, until done: @escaping @Sendable (String) -> Bool,
          timeout: Duration = .seconds(10)) async throws -> String {
    let fd = connection.fd
    return try await offCooperativePool {
        var text = previous
        let deadline = ContinuousClock.now + timeout
        while !done(text) {
            switch receive(fd, until: deadline) {
            case .success(let bytes): text += String(decoding: bytes, as: UTF8.self)
            case .failure(let end): throw TestFailure("\(end) before the expected text; got \(text.debugDescription)")
            }
        }
        return text
    }
}
