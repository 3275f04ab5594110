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
