public import HTTPTypes
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// What a handler answers: a status, header fields, and a body that is either whole or streamed.
///
/// ```swift
/// Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(string: "hi\n"))
/// try Response.json(model)                 // 200, application/json
/// Response(status: .ok, body: .stream { writer in try await writer.write("tick\n") })
/// ```
public struct Response: Sendable {
    /// The status (`HTTPResponse.Status` from swift-http-types).
    public var status: HTTPResponse.Status
    /// Header fields. `X-Request-Id` is the server's (one set here is replaced); `Content-Length`
    /// is set from a whole body; `Content-Type` defaults to `text/plain; charset=utf-8`.
    public var headers: HTTPFields
    /// The body.
    public var body: ResponseBody

    /// A response.
    public init(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], body: ResponseBody = ResponseBody()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// `value` encoded as JSON, `Content-Type: application/json`.
    /// - Throws: the encoder's error (the server answers `500`).
    public static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:],
                                          encoder: JSONEncoder = JSONEncoder()) throws -> Response {
        var headers = headers
        if headers[.contentType] == nil { headers[.contentType] = "application/json" }
        let data = try encoder.encode(value)
        return Response(status: status, headers: headers, body: ResponseBody(bytes: [UInt8](data)))
    }
}

/// A response body: bytes sent whole, or a stream written by a closure.
public struct ResponseBody: Sendable {
    enum Storage: Sendable {
        case bytes([UInt8])
        case stream(@Sendable (ResponseBodyWriter) async throws -> Void)
    }

    let storage: Storage

    /// An empty body.
    public init() { storage = .bytes([]) }
    /// A body of `bytes`.
    public init(bytes: [UInt8]) { storage = .bytes(bytes) }
    /// A body of `string`, as UTF-8.
    public init(string: String) { storage = .bytes(Array(string.utf8)) }

    /// A streamed body: after the head is sent, `write` runs in the handler's Task (still
    /// cancelled when the client leaves) and writes chunks with backpressure; the stream ends
    /// when it returns. A throw after the head was sent ends the stream (and is reported).
    public static func stream(_ write: @escaping @Sendable (ResponseBodyWriter) async throws -> Void) -> ResponseBody {
        ResponseBody(storage: .stream(write))
    }

    private init(storage: Storage) { self.storage = storage }
}

/// Writes a streamed body. Each write is one chunk sent as soon as the socket takes it; a write
/// waits while the connection holds more than the server's high watermark (64 KiB) until it
/// drains to the low one (16 KiB), so a client that stops reading costs at most that much.
///
/// Threading: the handler's Task (it runs on the request's loop).
public struct ResponseBodyWriter: Sendable {
    let stream: ResponseStream

    /// Writes `text` as UTF-8.
    /// - Throws: ``ResponseError/clientGone(_:)`` once the client has left.
    public func write(_ text: String) async throws(ResponseError) { try await stream.write(text) }

    /// Writes `bytes`.
    /// - Throws: ``ResponseError/clientGone(_:)`` once the client has left.
    public func write(_ bytes: [UInt8]) async throws(ResponseError) { try await stream.write(bytes) }

    /// Bytes queued on the connection, not yet taken by the socket.
    public var queuedBytes: Int { stream.queuedBytes }
}

/// Something a handler may return: turned into a ``Response`` by the server.
///
/// `Response`, `String`, `[UInt8]`, `HTTPResponse.Status` and every ``ResponseEncodable`` (JSON)
/// conform.
public protocol ResponseGenerator: Sendable {
    /// The response for `request`.
    func response(from request: Request, context: RequestContext) throws -> Response
}

extension Response: ResponseGenerator {
    public func response(from request: Request, context: RequestContext) throws -> Response { self }
}

extension String: ResponseGenerator {
    /// `200`, `text/plain; charset=utf-8`.
    public func response(from request: Request, context: RequestContext) throws -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(string: self))
    }
}

extension Array: ResponseGenerator where Element == UInt8 {
    /// `200`, `application/octet-stream`.
    public func response(from request: Request, context: RequestContext) throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody(bytes: self))
    }
}

extension HTTPResponse.Status: ResponseGenerator {
    /// The status with an empty body.
    public func response(from request: Request, context: RequestContext) throws -> Response {
        Response(status: self)
    }
}

/// An `Encodable` a handler returns as JSON (`200`, `application/json`).
///
/// ```swift
/// struct Model: ResponseEncodable { let id: String }
/// router.get("/v1/models/{id}") { _, context in Model(id: try context.parameters.require("id")) }
/// ```
public protocol ResponseEncodable: Encodable, ResponseGenerator {}

extension ResponseEncodable {
    public func response(from request: Request, context: RequestContext) throws -> Response {
        try Response.json(self)
    }
}
