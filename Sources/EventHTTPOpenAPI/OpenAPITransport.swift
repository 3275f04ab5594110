public import EventHTTP
public import HTTPTypes
public import OpenAPIRuntime

// swift-openapi-runtime's `ServerTransport` on EventHTTP's router, shaped after
// swift-openapi-hummingbird: the generated `registerHandlers(on:)` calls `register` once per
// operation, and each operation becomes an ordinary async route. The generated handler runs in
// the request's Task, so it is cancelled when the client leaves (or the route's deadline or the
// server's shutdown cancels it), like any other EventHTTP handler.

extension RouterMethods {
    /// Registers an OpenAPI operation handler for `method` on `path`, as generated code does
    /// through `ServerTransport`.
    ///
    /// - Parameters:
    ///   - handler: the generated handler. It gets the request head, the request body (`nil`
    ///     when the request carried none) and the path parameters, and returns the response.
    ///   - method: the operation's method.
    ///   - path: the operation's path as OpenAPI writes it (`/pets/{petId}`); the router
    ///     matches `{name}` captures, whole segments or inside one (`/files/{name}.zip`).
    public func register(
        _ handler: @Sendable @escaping (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?),
        method: HTTPRequest.Method,
        path: String
    ) throws {
        on(method, path) { request, context in
            let (response, body): (HTTPResponse, HTTPBody?)
            do {
                (response, body) = try await handler(request.head, OpenAPIBridge.requestBody(request), OpenAPIBridge.metadata(context))
            } catch let error as ServerError {
                throw OpenAPIBridge.unwrapped(error)
            }
            return try await OpenAPIBridge.response(response, body: body)
        }
    }
}

/// The router serves generated OpenAPI servers: `try handler.registerHandlers(on: router)`.
extension Router: ServerTransport {}
/// A group serves generated OpenAPI servers under its prefix, with its middleware.
extension RouterGroup: ServerTransport {}

/// Conversions between EventHTTP's request and response and OpenAPIRuntime's.
enum OpenAPIBridge {
    /// The request body as an `HTTPBody`. evhttp buffered it whole before the handler started,
    /// so its length is known and it may be iterated more than once. A request that announced
    /// no body (no `Content-Length`, no `Transfer-Encoding`) and has none gets `nil`, which is
    /// what generated code expects of a bodiless `GET`.
    static func requestBody(_ request: Request) -> HTTPBody? {
        let announced = request.headers[.contentLength] != nil || request.headers[.transferEncoding] != nil
        if request.body.isEmpty && !announced { return nil }
        return HTTPBody(request.body.bytes)
    }

    /// What the server should answer for a generated handler's error. Generated code wraps
    /// whatever an operation throws in a `ServerError`: an ``HTTPError`` inside keeps its status
    /// (and goes through the server's renderer); so does an `HTTPResponseConvertible` error's
    /// status; anything else stays a `ServerError`, for the server's `mapError` (`500`).
    static func unwrapped(_ error: ServerError) -> any Error {
        if let httpError = error.underlyingError as? HTTPError { return httpError }
        if error.httpStatus != .internalServerError {
            return HTTPError(error.httpStatus, message: error.causeDescription, headers: error.httpHeaderFields)
        }
        return error
    }

    /// The route's captures as OpenAPI path parameters (keyed by the names in the path template).
    ///
    /// The router hands over captures percent-decoded, but generated code decodes path
    /// parameters itself (OpenAPIRuntime's URI decoder), as it would a raw segment: each value is
    /// percent-encoded again (all but RFC 3986's unreserved characters), so that a value with
    /// `%` or `/` in it (`a%2Fb` on the wire) reaches the operation once-decoded, not twice.
    static func metadata(_ context: RequestContext) -> ServerRequestMetadata {
        var parameters: [String: Substring] = [:]
        for (name, value) in context.parameters.all where parameters[name] == nil {
            parameters[name] = Substring(percentEncoded(value))
        }
        return ServerRequestMetadata(pathParameters: parameters)
    }

    /// `text` with every byte but ALPHA, DIGIT, `-`, `.`, `_` and `~` written as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                bytes.append(byte)
            default:
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The EventHTTP response for an OpenAPI response. A body of known length is collected and
    /// sent whole (with `Content-Length`); any other is streamed chunk by chunk as the
    /// `HTTPBody` yields them, in the request's Task (so a client that leaves stops it).
    static func response(_ response: HTTPResponse, body: HTTPBody?) async throws -> Response {
        var headers = response.headerFields
        // The transport frames the body itself; a length from the handler would be sent twice.
        headers[.contentLength] = nil
        headers[.transferEncoding] = nil
        guard let body else {
            return Response(status: response.status, headers: headers)
        }
        if case .known(let length) = body.length {
            let bytes = try await [UInt8](collecting: body, upTo: Int(clamping: length))
            return Response(status: response.status, headers: headers, body: ResponseBody(bytes: bytes))
        }
        return Response(status: response.status, headers: headers, body: .stream { writer in
            for try await chunk in body {
                try await writer.write([UInt8](chunk))
            }
        })
    }
}
