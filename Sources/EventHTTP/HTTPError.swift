public import HTTPTypes

/// An error that carries its answer: thrown by a handler (or middleware), it becomes that
/// status, with `message` as the body through the server's ``ErrorRenderer``.
///
/// ```swift
/// guard let model = models[id] else { throw HTTPError(.notFound, message: "unknown model \(id)") }
/// ```
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    /// The status of the answer.
    public var status: HTTPResponse.Status
    /// Extra header fields of the answer (`Allow`, `Retry-After`, ...).
    public var headers: HTTPFields
    /// What went wrong, in words for the client; the status's reason phrase when `nil`.
    public var message: String?
    /// A machine-readable kind the renderer may use (the token-stream example puts it in
    /// `error.type`); `nil` lets the renderer choose from the status.
    public var kind: String?

    /// An error answered with `status`.
    public init(_ status: HTTPResponse.Status, message: String? = nil, headers: HTTPFields = [:], kind: String? = nil) {
        self.status = status
        self.message = message
        self.headers = headers
        self.kind = kind
    }

    /// The text the client reads.
    public var body: String { message ?? status.reasonPhrase }

    public var description: String { "\(status.code) \(body)" }
}

/// One error answer about to be sent, as an ``ErrorRenderer`` sees it.
public struct ErrorAnswer: Sendable {
    /// Its status.
    public var status: HTTPResponse.Status
    /// What went wrong, in words.
    public var message: String
    /// The request's id (also in `X-Request-Id`).
    public var requestID: String
    /// ``HTTPError/kind``, if the error had one.
    public var kind: String?
    /// Who answered: a handler's error, the router (`404`, `405`), the server while draining
    /// (`503`), or the transport's canned answers (`400`, `413`, `417`, `503`).
    public var origin: Origin
    /// The request's method as sent (`GET`, `FOO`), or `-` when the transport could not read it.
    public var method: String
    /// The request target as sent (`/v1/models?x=1`), or `-` when the transport could not read it.
    public var target: String

    /// An answer to render (the server builds these; tests of a renderer build their own).
    public init(status: HTTPResponse.Status, message: String, requestID: String, kind: String? = nil, origin: Origin,
                method: String = "-", target: String = "-") {
        self.status = status
        self.message = message
        self.requestID = requestID
        self.kind = kind
        self.origin = origin
        self.method = method
        self.target = target
    }

    /// Who produced an error answer.
    public enum Origin: Sendable, Equatable {
        /// A handler or middleware threw.
        case handler
        /// No route matched (`404`), or the path did but not the method (`405`).
        case router
        /// The server is shutting down (`503`).
        case shutdown
        /// The transport answered on its own (evhttp's `400`, `413`, `417`; the connection limit's `503`).
        case transport
    }
}

/// Shapes the body and `Content-Type` of every error answer the server sends: a handler's
/// ``HTTPError`` (or mapped error), the router's `404` and `405`, the drain's `503`, and the
/// transport's canned answers. Every one carries `X-Request-Id` whatever the renderer does.
public struct ErrorRenderer: Sendable {
    /// The rendering: content type and body.
    public let render: @Sendable (ErrorAnswer) -> (contentType: String, body: String)

    /// A renderer made of one closure.
    public init(_ render: @escaping @Sendable (ErrorAnswer) -> (contentType: String, body: String)) {
        self.render = render
    }

    /// The default: `text/plain; charset=utf-8`, the message and a newline.
    public static let plainText = ErrorRenderer { answer in ("text/plain; charset=utf-8", answer.message + "\n") }
}
