public import EventHTTPSystem

/// Why a connection ended: what ``RequestEnd/aborted(_:)`` carries for a request whose
/// connection went before its reply.
public enum ConnectionEnd: Equatable, Sendable, CustomStringConvertible {
    /// The client closed its sending side: FIN, whether a full close or a half-close.
    case peerClosed
    /// Reading the socket failed, typically `ECONNRESET` after an RST.
    case socketError(errno: Errno)
    /// The client sent more than ``HTTPServerOptions/pipelineLimit`` bytes behind a pending request.
    case pipelineLimitExceeded
    /// The client did not send a whole request in time (header timeout, or idle keep-alive).
    case readTimeout
    /// The server freed the connection itself (shutdown, or an evhttp error).
    case serverClosed

    public var description: String {
        switch self {
        case .peerClosed: return "client closed the connection"
        case .socketError(let code): return "connection error: \(code)"
        case .pipelineLimitExceeded: return "client sent too much data while the request was pending"
        case .readTimeout: return "client too slow to send its request"
        case .serverClosed: return "server closed the connection"
        }
    }
}

extension ConnectionEnd {
    /// Whether the client ended the connection (FIN, half-close, RST), rather than the server
    /// (a limit, a timeout, a shutdown).
    public var isClientSide: Bool {
        switch self {
        case .peerClosed, .socketError: true
        case .pipelineLimitExceeded, .readTimeout, .serverClosed: false
        }
    }
}

/// Why a client connection closed, whoever closed it: reported once per connection through
/// ``LoopResponder/connectionClosed(_:)``. The raw values are metric labels.
public enum ConnectionCloseReason: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The client closed or reset it.
    case client
    /// The server closed it after an answer, as the request asked (`Connection: close`, HTTP/1.0).
    case done
    /// The first request did not arrive whole within ``HTTPServerOptions/headerTimeout``.
    case headerTimeout = "header_timeout"
    /// A keep-alive connection sat idle past ``HTTPServerOptions/idleTimeout``, or a write stalled.
    case idleTimeout = "idle_timeout"
    /// The client sent more than ``HTTPServerOptions/pipelineLimit`` bytes behind a pending request.
    case pipelineLimit = "pipeline_limit"
    /// Refused at ``HTTPServerOptions/maxConnections``.
    case maxConnections = "max_connections"
    /// Closed after an error answer to a request the server would not serve (`400`, `413`,
    /// `417`, `431`, `501`, `505`).
    case badRequest = "bad_request"
    /// Closed by a shutdown (draining, or the server freed).
    case shutdown

    /// The reason in words, for a log line: `pipeline limit`, `header timeout`, ...
    public var description: String {
        switch self {
        case .client: "client"
        case .done: "done"
        case .headerTimeout: "header timeout"
        case .idleTimeout: "idle timeout"
        case .pipelineLimit: "pipeline limit"
        case .maxConnections: "connection limit"
        case .badRequest: "bad request"
        case .shutdown: "shutdown"
        }
    }

    /// Whether the server dropped the connection for a reason of its own (a limit, a timeout, a
    /// bad request, a shutdown), rather than the client or the end of a conversation.
    public var isServerDrop: Bool { self != .client && self != .done }
}
