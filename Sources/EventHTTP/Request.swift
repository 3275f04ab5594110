public import HTTPTypes
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// One request as a handler sees it: its head in swift-http-types' vocabulary, its path and
/// query as sent, and its whole body.
///
/// A value: copy it, keep it, send it to another task. It holds nothing of the connection; to
/// learn whether the client is still there, ask the ``RequestContext``.
public struct Request: Sendable {
    /// Method, target and header fields (`HTTPRequest` from swift-http-types). Header names keep
    /// the case the client sent; look them up with `HTTPField.Name` (case-insensitive).
    public var head: HTTPRequest
    /// The path component of the target, undecoded (`/v1/models/tiny%2D1`). The router matches
    /// the percent-decoded segments and hands them over as ``RequestContext/parameters``.
    public var path: String
    /// The raw query, without `?`, if the target had one.
    public var query: String?
    /// The body, read whole before the handler starts (up to the server's body limit).
    public var body: RequestBody
    /// The request's id: its `X-Request-Id` response header (see ``RequestIDPolicy``).
    public var id: String
    /// Whether the request line said `HTTP/1.0`.
    public var isHTTP10: Bool

    /// A request, as the server builds it (tests and middleware build their own).
    public init(head: HTTPRequest, path: String, query: String? = nil, body: RequestBody = RequestBody(),
                id: String = "-", isHTTP10: Bool = false) {
        self.head = head
        self.path = path
        self.query = query
        self.body = body
        self.id = id
        self.isHTTP10 = isHTTP10
    }

    /// The method (`GET`, `POST`, ...).
    public var method: HTTPRequest.Method { head.method }
    /// The header fields.
    public var headers: HTTPFields { head.headerFields }

    /// The `Last-Event-ID` a reconnecting event-stream client sent, if any.
    public var lastEventID: String? { head.headerFields[.lastEventID] }

    /// The query's `name=value` pairs, decoded (`%xx` and `+`), in order. A pair without `=` is
    /// a name with an empty value; a malformed escape is kept as sent.
    public var queryItems: [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = PercentDecoding.decode(parts[0], plusIsSpace: true) ?? String(parts[0])
            let value = parts.count > 1 ? (PercentDecoding.decode(parts[1], plusIsSpace: true) ?? String(parts[1])) : ""
            return (name, value)
        }
    }

    /// The first decoded value of query item `name`.
    public func queryItem(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }
}

extension HTTPField.Name {
    /// `Last-Event-ID` (server-sent events).
    public static let lastEventID = HTTPField.Name("Last-Event-ID")!
    /// `X-Request-Id`.
    public static let xRequestID = HTTPField.Name("X-Request-Id")!
}

/// A request body: the bytes evhttp buffered before the handler started.
///
/// evhttp reads the whole body first (up to ``EventHTTPServer/Configuration/maxBodyBytes``;
/// past it the client gets `413` and no handler runs), so a body the client cut short never
/// starts a handler. Read it as bytes, as text, as JSON, or as an `AsyncSequence` of chunks.
public struct RequestBody: Sendable, AsyncSequence {
    /// The body's bytes.
    public let bytes: [UInt8]
    /// The size of each chunk the `AsyncSequence` yields.
    public static let chunkSize = 16 * 1024

    /// A body of `bytes`.
    public init(bytes: [UInt8] = []) { self.bytes = bytes }

    /// The body as UTF-8 text (invalid sequences replaced).
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Whether the body is empty.
    public var isEmpty: Bool { bytes.isEmpty }

    /// Decodes the body as JSON.
    /// - Throws: an ``HTTPError`` `400` with the decoder's reason when the body is not a `T`.
    public func decode<T: Decodable>(as type: T.Type = T.self, using decoder: JSONDecoder = JSONDecoder()) throws(HTTPError) -> T {
        do {
            return try decoder.decode(T.self, from: Data(bytes))
        } catch {
            throw HTTPError(.badRequest, message: "invalid JSON body: \(JSONDecodingProblem(error))")
        }
    }

    public typealias Element = ArraySlice<UInt8>

    /// Yields the body in chunks of at most ``chunkSize`` bytes.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let bytes: [UInt8]
        var offset = 0

        public mutating func next() async -> ArraySlice<UInt8>? {
            guard offset < bytes.count else { return nil }
            let end = Swift.min(bytes.count, offset + RequestBody.chunkSize)
            defer { offset = end }
            return bytes[offset..<end]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes) }
}

/// A decoder error in a sentence: what was wrong, and where.
struct JSONDecodingProblem: CustomStringConvertible {
    let error: any Error
    init(_ error: any Error) { self.error = error }

    var description: String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "" : " at \(keys.joined(separator: "."))"
        }
        switch error {
        case .typeMismatch(let type, let context): return "expected \(type)\(path(context))"
        case .valueNotFound(let type, let context): return "missing \(type) value\(path(context))"
        case .keyNotFound(let key, let context): return "missing field \"\(key.stringValue)\"\(path(context))"
        case .dataCorrupted(let context): return "malformed JSON\(path(context))"
        @unknown default: return "\(error)"
        }
    }
}

/// Percent-decoding of a path segment or a query part.
enum PercentDecoding {
    /// `text` with `%xx` decoded (and `+` as a space if asked); `nil` for a bad escape or bytes
    /// that are not UTF-8.
    static func decode(_ text: Substring, plusIsSpace: Bool = false) -> String? {
        let utf8 = text.utf8
        guard utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let first = utf8.index(after: index)
                guard first != utf8.endIndex else { return nil }
                let second = utf8.index(after: first)
                guard second != utf8.endIndex, let high = hex(utf8[first]), let low = hex(utf8[second]) else { return nil }
                bytes.append(high << 4 | low)
                index = utf8.index(after: second)
            } else {
                bytes.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Decodes `%xx` in `text` into `output` (at least `text.count` long); returns the bytes
    /// written, or `nil` for a bad escape. The bytes are not checked for UTF-8.
    static func decode(_ text: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        var written = 0
        var index = 0
        while index < text.count {
            let byte = text[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < text.count, let high = hex(text[index + 1]), let low = hex(text[index + 2]) else { return nil }
                output[written] = high << 4 | low
                index += 3
            } else {
                output[written] = byte
                index += 1
            }
            written += 1
        }
        return written
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
