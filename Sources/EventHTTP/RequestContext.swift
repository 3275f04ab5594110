public import EventHTTPCore
public import Logging
import HTTPTypes

/// Why a handler's Task was cancelled.
public enum CancellationReason: Sendable, Equatable, CustomStringConvertible {
    /// The client went away (FIN, RST, half-close) or the server closed its connection.
    case clientGone(ConnectionEnd)
    /// The route's deadline passed.
    case deadlineExceeded
    /// The server is shutting down and the grace period is over; the reason's words.
    case shutdown(String)

    public var description: String {
        switch self {
        case .clientGone(let end): "client gone: \(end)"
        case .deadlineExceeded: "deadline exceeded"
        case .shutdown(let reason): reason
        }
    }
}

/// Everything about a request that is not the request: its logger, its route's parameters,
/// and whether (and why) its work is no longer wanted.
///
/// A value, but its cancellation state is read from the request's loop: read
/// ``cancellationReason`` from the handler's Task (it runs on that loop), not from another
/// actor.
public struct RequestContext: Sendable {
    /// A logger with `request_id` in its metadata.
    ///
    /// Made when read (a handler that logs nothing costs nothing: adding metadata makes a log
    /// handler re-render it, swift-log's `StreamLogHandler` into a string); read it once into a
    /// local to log several times. Setting it keeps the logger set.
    public var logger: Logger {
        get {
            if let customLogger { return customLogger }
            var logger = loopLogger
            logger[metadataKey: "request_id"] = .string(requestID)
            return logger
        }
        set { customLogger = newValue }
    }
    /// The loop's logger, without the request's id.
    private let loopLogger: Logger
    /// The logger a handler or middleware set.
    private var customLogger: Logger?
    /// The route's captures, percent-decoded.
    public var parameters: Parameters
    /// The matched route's pattern (`/v1/models/{id}`); empty when none matched.
    public var route: String
    /// The request's id (its `X-Request-Id`).
    public let requestID: String
    /// The loop the handler runs on: sleep on it with `executor.sleep(for:)` (a libevent timer,
    /// cancelled with the Task).
    public let executor: LoopExecutor
    let state: AsyncRequest?

    /// - Parameter loopLogger: the loop's logger; ``logger`` adds `request_id` to it.
    init(loopLogger: Logger, parameters: Parameters, route: String, requestID: String, executor: LoopExecutor, state: AsyncRequest?) {
        self.loopLogger = loopLogger
        self.parameters = parameters
        self.route = route
        self.requestID = requestID
        self.executor = executor
        self.state = state
    }

    /// Why the handler was cancelled, or `nil` while its work is still wanted. A handler that
    /// sees `.shutdown` while its client is still there can still answer (`503`) or send a
    /// last event; after `.clientGone` nothing reaches the client.
    public var cancellationReason: CancellationReason? {
        guard let state else { return nil }
        state.executor.thread.preconditionOnThread()
        if let end = state.http.abortReason { return .clientGone(end) }
        if state.deadlinePassed { return .deadlineExceeded }
        if let reason = state.shutdownReasonValue { return .shutdown(reason) }
        return nil
    }

    /// Whether the client is still connected (or, for a stream, still reading).
    public var isClientConnected: Bool {
        guard let state else { return true }
        state.executor.thread.preconditionOnThread()
        return state.http.abortReason == nil
    }
}

/// How the server names requests (`X-Request-Id`).
public enum RequestIDPolicy: Sendable {
    /// Always generate: a per-process random prefix and a counter (`3f9a1c02-17`), unique
    /// across restarts and loops. The client's `X-Request-Id` is ignored.
    case generate
    /// Use the client's `X-Request-Id` when it is 1 to 128 visible ASCII characters, else generate.
    case trustClient
    /// The application names each request: from its number (unique across the server's loops,
    /// from 1) and the client's `X-Request-Id`, if it sent one. Called on the request's loop.
    case custom(@Sendable (_ number: UInt64, _ clientValue: String?) -> String)
}

/// A route's captures: `{id}` or `:id` segments, a capture inside a segment (`{name}.zip`),
/// and the rest of the path under `**`.
public struct Parameters: Sendable {
    var values: [(name: String, value: String)] = []

    /// No captures.
    public init() {}

    /// The decoded value of capture `name`.
    public subscript(_ name: String) -> String? {
        values.last { $0.name == name }?.value
    }

    /// The decoded value of capture `name`.
    /// - Throws: ``HTTPError`` `400` when the route has no such capture.
    public func require(_ name: String) throws(HTTPError) -> String {
        guard let value = self[name] else { throw HTTPError(.badRequest, message: "missing path parameter \(name)") }
        return value
    }

    /// Capture `name` converted to `T` (`Int`, `UUID`, ...).
    /// - Throws: ``HTTPError`` `400` when it is missing or not a `T`.
    public func require<T: LosslessStringConvertible>(_ name: String, as type: T.Type) throws(HTTPError) -> T {
        let text = try require(name)
        guard let value = T(text) else { throw HTTPError(.badRequest, message: "path parameter \(name) is not a valid \(T.self): \(text)") }
        return value
    }

    /// What `**` matched (the rest of the path, decoded segments joined by `/`), if the route has one.
    public var catchAll: String? { self["**"] }

    /// Every capture, in path order.
    public var all: [(name: String, value: String)] { values }

    mutating func append(_ name: String, _ value: String) { values.append((name, value)) }

    /// Appends, making room for `capacity` captures if there is none yet.
    mutating func append(_ name: String, _ value: String, reserving capacity: Int) {
        if values.capacity == 0 { values.reserveCapacity(capacity) }
        values.append((name, value))
    }
}
