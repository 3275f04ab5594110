import Synchronization

/// Limits and socket options for an ``LoopHTTPServer``.
public struct HTTPServerOptions: Sendable {
    /// Largest request line plus headers, in bytes (`evhttp_set_max_headers_size`). Larger
    /// requests get evhttp's canned `400` and the connection is closed.
    public var maxHeaderBytes: Int = 64 * 1024
    /// Largest request body, in bytes (`evhttp_set_max_body_size`); larger bodies get `413`.
    public var maxBodyBytes: Int = 1024 * 1024
    /// Bytes a client may send behind a pending request (pipelined requests) before it is
    /// dropped. They are kept for evhttp to read after the reply.
    public var pipelineLimit: Int = 64 * 1024
    /// `listen(2)` backlog for each listener.
    public var backlog: Int32 = 4096
    /// Most client connections open at once across every server of one ``HTTPServerGroup``
    /// (the whole process, when the servers share a group). Past it, a new connection gets a
    /// canned `503` and is closed before evhttp reads from it.
    public var maxConnections: Int = 10_000
    /// Time a new connection has to send its first whole request (request line, headers, body):
    /// slowloris clients are dropped after it. `nil`: no limit.
    public var headerTimeout: Duration? = .seconds(10)
    /// Time a keep-alive connection may sit idle and then send its next whole request; also the
    /// limit on any single stalled read or write (`evhttp_set_timeout_tv`). `nil`: no limit.
    public var idleTimeout: Duration? = .seconds(60)
    /// Let several sockets (one per worker loop) share a port (`SO_REUSEPORT`).
    public var reusePort = false
    /// Record who sent each request in its ``RequestHead`` (``RequestHead/remote``,
    /// ``RequestHead/proto``, ``RequestHead/userAgent``), for an access log. Off, those stay
    /// `nil` and a request costs a header lookup and a string less.
    public var recordsClient = true

    public init() {}
}

/// What several ``LoopHTTPServer``s (one per worker loop) share: the count of open connections that
/// ``HTTPServerOptions/maxConnections`` limits, and the numbering of requests.
///
/// Sendable: two atomics. A server admits a connection with one `wrappingAdd` and gives the slot
/// back when the connection closes, so the limit holds for the group whichever loop accepted.
public final class HTTPServerGroup: Sendable {
    private let open = Atomic<Int>(0)
    private let lastRequest = Atomic<UInt64>(0)

    /// A group with no connection open and no request numbered yet.
    public init() {}

    /// Connections open across the group right now.
    public var openConnections: Int { open.load(ordering: .relaxed) }

    /// Takes a connection slot if fewer than `limit` are taken; `false` (and nothing taken) if not.
    func admit(limit: Int) -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        open.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// Gives back a slot taken by ``admit(limit:)``.
    func release() {
        open.wrappingSubtract(1, ordering: .relaxed)
    }

    /// The next request number, unique in the group, from 1.
    func nextRequestNumber() -> UInt64 {
        lastRequest.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
