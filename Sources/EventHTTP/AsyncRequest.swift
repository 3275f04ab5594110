/// What a route does when its client goes away before the handler has finished.
public enum ClientAbortPolicy: Sendable, Equatable {
    /// Cancel the handler's Task (the default): `Task.isCancelled`, cancellation handlers and
    /// awaits on any executor see it at once.
    case cancel
    /// Let the handler run to its end. Answers and writes after the abort throw
    /// ``ResponseError/clientGone(_:)``; ``AsyncRequest/clientEnd`` says why.
    case `continue`
}

/// An async route handler. It runs as a Task that prefers the loop's `LoopExecutor`
/// (`Task(executorPreference:)`), so its nonisolated code runs on the loop thread, between
/// libevent callbacks, with no thread hop; awaits on other executors come back to the loop.
public typealias AsyncHandler = @Sendable (AsyncRequest, AsyncResponse) async throws -> Void

/// One request as an async handler sees it.
///
/// Threading: loop-confined, like the `LoopRequest` it wraps. It is `Sendable` only so that it
/// can enter the handler's Task, which runs on the loop thread; every member checks the thread
/// (a precondition failure elsewhere, e.g. from inside another actor).
///
/// Ownership: the runner and the handler's Task hold it until the Task ends; it holds the
/// `LoopRequest` (and through it the connection object, not the socket).
public final class AsyncRequest: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched on `executor.thread` only, checked by
    // `preconditionOnThread` in each member; the rest is immutable and Sendable.
    let http: LoopRequest
    /// The loop this request and its handler run on.
    public let executor: LoopExecutor
    /// Its number, name, method, target and arrival, as the access log sees them.
    public let head: RequestHead
    /// The request method (`GET` routes also take `HEAD`; the body is then dropped).
    public let method: RequestMethod
    /// The path component of the target, undecoded, e.g. `/`.
    public let path: String
    /// The raw query string, without `?`, if any.
    public let query: String?
    /// Whether the request line said `HTTP/1.0`: a stream to it is close-delimited.
    public let isHTTP10: Bool
    var shutdownReasonValue: String?
    /// Set when the route's deadline cancelled the handler (see ``RequestContext/cancellationReason``).
    var deadlinePassed = false

    init(_ http: LoopRequest, executor: LoopExecutor) {
        self.http = http
        self.executor = executor
        self.head = http.head
        self.method = http.method
        self.path = http.path
        self.query = http.query
        self.isHTTP10 = http.isHTTP10
    }

    /// The request's name: its `X-Request-Id`.
    public var id: String { head.id }

    /// The value of the first request header called `name` (case-insensitive), while the
    /// request is unanswered or streaming; `nil` afterwards.
    public func header(_ name: String) -> String? {
        executor.thread.preconditionOnThread()
        return http.header(name)
    }

    /// The query's `name=value` pairs, decoded, in order; `nil` if the query is malformed.
    public func queryItems() -> [(name: String, value: String)]? {
        executor.thread.preconditionOnThread()
        return http.queryItems()
    }

    /// Why the connection ended before the handler answered or finished its stream (FIN,
    /// half-close: `ConnectionEnd.peerClosed`; RST: `ConnectionEnd.socketError(errno:)`;
    /// the server closing it: `ConnectionEnd.serverClosed`); `nil` while the client is there.
    public var clientEnd: ConnectionEnd? {
        executor.thread.preconditionOnThread()
        return http.abortReason
    }

    /// The reason given to ``AsyncRequestRunner/cancelAll(reason:)`` (e.g. `server shutting
    /// down`) if that cancelled this handler; `nil` otherwise. A cancelled handler whose client
    /// is still there can use it to write a last message (`event: error`) before it ends.
    public var shutdownReason: String? {
        executor.thread.preconditionOnThread()
        return shutdownReasonValue
    }
}

/// Why an answer or a write did not happen.
public enum ResponseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection ended first (see ``AsyncRequest/clientEnd``). Thrown by writes after an
    /// abort, in `.continue` routes and in `.cancel` routes alike. Never `CancellationError`.
    case clientGone(ConnectionEnd)
    /// The request was already answered (or its stream started, or finished).
    case alreadyAnswered

    public var description: String {
        switch self {
        case .clientGone(let end): return "client gone: \(end)"
        case .alreadyAnswered: return "the request was already answered"
        }
    }
}
