import GreetdClient

/// A whole HTTP response as a test reads it: status, headers (looked up by name in any case) and
/// the body as text. Parsed by GreetdClient's `HTTPResponseBuffer`, the one response parser.
public struct HTTPReply: Sendable, CustomStringConvertible {
    /// The response's bytes as text, head and body as sent (for messages).
    public let raw: String
    /// The status code.
    public let status: Int
    /// The reason phrase (`OK`).
    public let reason: String
    /// The header fields; `headers["x-request-id"]` finds `X-Request-Id`.
    public let headers: HTTPHeaders
    /// The body, decoded (chunk framing removed), as bytes.
    public let bodyBytes: [UInt8]

    /// A reply from a complete response.
    /// - Throws: ``TestFailure`` if `response` is incomplete or its status line is not HTTP/1.x.
    public init(_ response: HTTPResponseBuffer) throws {
        guard let length = response.messageLength, let status = response.status else {
            let why = response.malformation.map { " (\($0))" } ?? ""
            throw TestFailure("incomplete response\(why): \(String(decoding: response.bytes, as: UTF8.self).debugDescription)")
        }
        raw = String(decoding: response.bytes[0..<length], as: UTF8.self)
        guard status != 0 else { throw TestFailure("bad status line in: \(raw.debugDescription)") }
        self.status = status
        reason = response.reason ?? ""
        headers = response.headers
        bodyBytes = response.body
    }

    /// Parses `raw`, everything a connection carried up to its end (`rawExchange`'s result), as
    /// the response to a `requestMethod` request; bytes after the first response are ignored.
    /// - Throws: ``TestFailure`` if `raw` holds no whole response.
    public init(parsing raw: String, requestMethod: String = "GET") throws {
        var buffer = HTTPResponseBuffer(requestMethod: requestMethod)
        buffer.append(contentsOf: Array(raw.utf8))
        buffer.markEndOfStream()
        try self.init(buffer)
    }

    /// The status line as sent, without its CRLF: `HTTP/1.1 200 OK`.
    public var statusLine: String { String(raw.prefix { !$0.isNewline }) }

    /// The body as UTF-8 text.
    public var body: String { String(decoding: bodyBytes, as: UTF8.self) }

    /// The value of the first header field called `name` (any case).
    public func header(_ name: String) -> String? { headers[name] }

    /// The body length the headers announce, if any.
    public var contentLength: Int? { header("Content-Length").flatMap { Int($0) } }

    /// The raw response.
    public var description: String { raw }
}
