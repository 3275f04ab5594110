/// Who answered a request: the application, or the transport itself with a canned response.
public enum ResponseOrigin: Equatable, Sendable {
    /// The ``LoopResponder`` got the request (through ``LoopResponder/handle(_:)``).
    case application
    /// Refused at ``HTTPServerOptions/maxConnections``: `503`, before a byte was read.
    case connectionLimit
    /// evhttp could not take the request: `400` (malformed, or headers over
    /// ``HTTPServerOptions/maxHeaderBytes``) or `413` (body over ``HTTPServerOptions/maxBodyBytes``).
    case parser
    /// The request line named a version other than HTTP/1.0 or 1.1: `400`, answered in HTTP/1.1.
    case unsupportedVersion
}

/// What the access log needs to know about one request, from the moment it arrived.
public struct RequestHead: Sendable {
    /// Unique in the ``HTTPServerGroup`` (the process, when every server shares one); from 1.
    public let number: UInt64
    /// The request's name: its `X-Request-Id` response header, chosen by
    /// ``LoopResponder/requestID(number:clientValue:)``.
    public let id: String
    /// The method as sent (`GET`, `FOO`), or `-` when the transport refused it unparsed.
    public let method: String
    /// The request target as sent, e.g. `/?delay=2s`, or `-` when unknown.
    public let target: String
    /// When the request arrived (its connection was accepted, for a refusal).
    public let start: ContinuousClock.Instant
    /// Who answered.
    public let origin: ResponseOrigin
    /// The client as an access log shows it (`127.0.0.1:5555`, `[::1]:5555`; an IPv4 client
    /// reached over an IPv6 socket as plain IPv4), or `nil` for a canned answer.
    public internal(set) var remote: String? = nil
    /// The request line's version (`HTTP/1.1`), or `nil` for a canned answer.
    public internal(set) var proto: String? = nil
    /// The `User-Agent` header as sent, or `nil` when there was none.
    public internal(set) var userAgent: String? = nil
    /// For a streamed reply whose connection ended before the stream did: the status and the
    /// body bytes it had sent (``RequestEnd/aborted(_:)`` says why it ended). `nil` otherwise.
    public internal(set) var streamed: (status: Int, bytes: Int)? = nil
}

/// How a request ended. Reported once per request by ``LoopResponder/requestEnded(_:_:)``.
public enum RequestEnd: Equatable, Sendable {
    /// A reply was handed to the connection: its status and body size (`0` for `HEAD`).
    case responded(status: Int, bytes: Int)
    /// The connection ended before a reply.
    case aborted(ConnectionEnd)
}

/// The application side of an ``LoopHTTPServer``: one object, called on the loop thread.
///
/// The server owns the transport's rules: it never frees a connection from inside one of
/// evhttp's callbacks, adds `X-Request-Id` to every response (canned ones included), and reports
/// every request's end exactly once. A responder never sees evhttp.
public protocol LoopResponder: AnyObject {
    /// Names a request as it arrives: the value of its `X-Request-Id` response header.
    /// - Parameters:
    ///   - number: unique in the server's ``HTTPServerGroup``.
    ///   - clientValue: the `X-Request-Id` the client sent; `nil` if none, or if the transport
    ///     refused the request before it could read its headers.
    func requestID(number: UInt64, clientValue: String?) -> String

    /// A whole request arrived. Before returning, answer it with
    /// ``LoopRequest/respond(status:reason:headers:body:)`` or keep it and call
    /// ``LoopRequest/watchForAbort()``; a request left otherwise is answered `500`.
    func handle(_ request: LoopRequest)

    /// A request ended: answered (by the responder, or canned by the transport) or aborted.
    /// Called exactly once per request, also for those ``handle(_:)`` never saw.
    func requestEnded(_ head: RequestHead, _ end: RequestEnd)

    /// The body and content type of an error answer the transport writes itself: evhttp's
    /// canned `400` (unparsable request, headers over the limit), `413` (body over the limit),
    /// `417` (an `Expect` it does not support), and the `503` at the connection limit.
    /// `nil` (the default) keeps evhttp's own page. Called on the loop thread; `head` names the
    /// request (its method and target are `-` when evhttp could not parse them).
    func renderError(status: Int, head: RequestHead) -> RenderedError?

    /// A client connection closed, for `reason`. Once per connection, refused ones included.
    /// Default: nothing.
    func connectionClosed(_ reason: ConnectionCloseReason)
}

/// A responder made of one closure, for the simple case: requests are named by number and their
/// ends are not reported.
final class ClosureResponder: LoopResponder {
    private let handler: (LoopRequest) -> Void

    init(_ handler: @escaping (LoopRequest) -> Void) {
        self.handler = handler
    }

    func requestID(number: UInt64, clientValue: String?) -> String { "\(number)" }
    func handle(_ request: LoopRequest) { handler(request) }
    func requestEnded(_ head: RequestHead, _ end: RequestEnd) {}
}
