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
/// `LoopRequest` (and through it the connection object, not the socket), and, while the handler
/// runs, the runner's bookkeeping for it (its Task, its abort policy, its handler: no entry
/// object of the runner's own). Its head, method, path and query are the `LoopRequest`'s, read
/// through, not copies (a copy of the head alone was about 150 B per pending request).
public final class AsyncRequest: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched on `executor.thread` only, checked by
    // `preconditionOnThread` in each member; the rest is immutable and Sendable.
    let http: LoopRequest
    /// The runner running its handler (the Task holds it, through this request).
    let runner: AsyncRequestRunner
    /// The loop this request and its handler run on.
    public var executor: LoopExecutor { runner.executor }
    /// Its number, name, method, target and arrival, as the access log sees them.
    public var head: RequestHead { http.head }
    /// The request method (`GET` routes also take `HEAD`; the body is then dropped).
    public var method: RequestMethod { http.method }
    /// The path component of the target, undecoded, e.g. `/`.
    public var path: String { http.path }
    /// The raw query string, without `?`, if any.
    public var query: String? { http.query }
    /// Whether the request line said `HTTP/1.0`: a stream to it is close-delimited.
    public var isHTTP10: Bool { http.isHTTP10 }
    /// The runner's: the handler's Task, from its start until it ends.
    var task: Task<Void, Never>?
    /// The runner's: the handler, until its Task ends.
    var handler: AsyncHandler?
    /// Which of the runner's ``AsyncRequestRunner/shutdownReasons`` cancelled the handler, plus
    /// one; 0: none (the reason itself here would be 16 B more per request).
    var shutdownReasonNumber: UInt32 = 0
    /// Set when the route's deadline cancelled the handler (see ``RequestContext/cancellationReason``).
    var deadlinePassed = false
    /// The runner's: what an abort does to the handler.
    let abortPolicy: ClientAbortPolicy

    /// The reason given to ``AsyncRequestRunner/cancelAll(reason:)`` if that cancelled this
    /// handler. Loop thread only.
    var shutdownReasonValue: String? {
        shutdownReasonNumber == 0 ? nil : runner.shutdownReasons[Int(shutdownReasonNumber) - 1]
    }

    init(_ http: LoopRequest, runner: AsyncRequestRunner, abortPolicy: ClientAbortPolicy, handler: @escaping AsyncHandler) {
        self.http = http
        self.runner = runner
        self.abortPolicy = abortPolicy
        self.handler = handler
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
