/// One HTTP/1.x response, parsed incrementally as its bytes arrive: the one response parser of
/// the code base (``ClientSocket``, greet-stress and the tests all use it).
///
/// The body is framed as RFC 9112 §6.3 says, in this order:
/// 1. no body: the response to a `HEAD` request (``init(requestMethod:)``), and every `1xx`,
///    `204` and `304` response;
/// 2. `Transfer-Encoding` whose last coding is `chunked`: decoded chunk by chunk, chunk
///    extensions and trailer fields skipped; any other transfer coding: up to the end of the stream;
/// 3. `Content-Length`: exactly that many bytes (several equal values are one; differing or
///    non-numeric values make the response ``isMalformed``);
/// 4. otherwise: everything up to the end of the stream (``markEndOfStream()``).
///
/// Interim responses (`100 Continue`, `103 Early Hints`) are skipped: the parser goes on to the
/// final response. A status line that is not `HTTP/1.x NNN` gives status 0, so a response with a
/// whole head always has a status. Bytes after the end of a complete response (a pipelined or
/// keep-alive follower) stay in ``bytes`` and start ``nextResponse(requestMethod:)``.
///
/// A plain value; whoever holds it owns it. Not thread-confined.
public struct HTTPResponseBuffer: Sendable {
    /// Every byte received, head and body as sent (chunked framing included), and any bytes
    /// that followed the response.
    public private(set) var bytes: [UInt8] = []
    /// The status code, once the whole head (status line and headers) has arrived.
    public private(set) var status: Int?
    /// The reason phrase after the status code (`OK`), once the head has arrived.
    public private(set) var reason: String?
    /// The header fields, once the head has arrived; empty before.
    public private(set) var headers = HTTPHeaders()
    /// Bytes of the head through its blank line (interim responses included); `nil` until then.
    public private(set) var headLength: Int?
    /// The `Content-Length` header's value, if the head had a valid one.
    public private(set) var contentLength: Int?
    /// Whether the body is sent with chunked transfer coding.
    public private(set) var isChunked = false
    /// The body received so far, decoded (chunk framing removed); at most `Content-Length` bytes.
    public private(set) var body: [UInt8] = []
    /// Whether the server ended the stream.
    public private(set) var endOfStream = false
    /// Why the response cannot be framed (a bad chunk size, conflicting `Content-Length`s), or
    /// `nil`. A malformed response never becomes complete.
    public private(set) var malformation: String?
    /// Whether the request was `HEAD`, whose response has headers only.
    public let isResponseToHead: Bool

    private var framing = Framing.head
    /// Where parsing continues in `bytes`.
    private var cursor = 0
    /// Where the search for the head's blank line continues.
    private var headScan = 0

    /// The longest chunk-size or trailer line accepted.
    private static let maxLineLength = 8 * 1024

    private enum Framing: Equatable, Sendable {
        case head, length(remaining: Int), untilClose
        case chunkSize, chunkData(remaining: Int), chunkDataEnd, trailers
        case done, malformed
    }

    /// An empty buffer for the response to a `requestMethod` request (`HEAD` expects no body).
    public init(requestMethod: String = "GET") {
        isResponseToHead = requestMethod.uppercased() == "HEAD"
    }

    /// Whether nothing has arrived yet.
    public var isEmpty: Bool { bytes.isEmpty }

    /// Whether the whole response is here.
    public var isComplete: Bool {
        switch framing {
        case .done: return true
        case .untilClose: return endOfStream
        default: return false
        }
    }

    /// Whether the response cannot be framed; ``malformation`` says why.
    public var isMalformed: Bool { framing == .malformed }

    /// Where the response ends in ``bytes``, once it is complete.
    public var messageLength: Int? { isComplete ? cursor : nil }

    /// The value of the first header field called `name` (any case).
    public func header(_ name: String) -> String? { headers[name] }

    /// Adds received bytes and parses as far as they go.
    public mutating func append<Bytes: Collection>(contentsOf chunk: Bytes) where Bytes.Element == UInt8 {
        bytes.append(contentsOf: chunk)
        advance()
    }

    /// Notes that the server closed the stream: a response framed by the end of the stream is
    /// complete now; one still waiting for `Content-Length` bytes or chunks stays incomplete.
    public mutating func markEndOfStream() {
        endOfStream = true
        advance()
    }

    /// A buffer for the next response on the same connection, holding the bytes that followed
    /// this one (and the end of the stream, if it came).
    /// - Precondition: this response is complete.
    public func nextResponse(requestMethod: String = "GET") -> HTTPResponseBuffer {
        precondition(isComplete, "nextResponse() of an incomplete response")
        var next = HTTPResponseBuffer(requestMethod: requestMethod)
        next.append(contentsOf: bytes[cursor...])
        if endOfStream { next.markEndOfStream() }
        return next
    }

    // MARK: - Parsing

    private mutating func advance() {
        while true {
            switch framing {
            case .head:
                guard parseHead() else { return }
            case .length(let remaining):
                let taken = takeBody(upTo: remaining)
                guard taken > 0 else { return }
                framing = taken == remaining ? .done : .length(remaining: remaining - taken)
            case .untilClose:
                _ = takeBody(upTo: bytes.count - cursor)
                return
            case .chunkSize:
                guard let line = takeLine() else { return }
                let size = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingSpaces
                guard !size.isEmpty, size.count <= 15, let count = Int(size, radix: 16) else {
                    return fail("bad chunk size \(String(line).debugDescription)")
                }
                framing = count == 0 ? .trailers : .chunkData(remaining: count)
            case .chunkData(let remaining):
                let taken = takeBody(upTo: remaining)
                guard taken > 0 else { return }
                framing = taken == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - taken)
            case .chunkDataEnd:
                guard bytes.count - cursor >= 2 else { return }
                guard bytes[cursor] == 13, bytes[cursor + 1] == 10 else { return fail("no CRLF after chunk data") }
                cursor += 2
                framing = .chunkSize
            case .trailers:
                guard let line = takeLine() else { return }
                if line.isEmpty { framing = .done }
            case .done, .malformed:
                return
            }
        }
    }

    /// Finds the head's blank line, parses it and picks the body framing. `false` until the
    /// whole head is here.
    private mutating func parseHead() -> Bool {
        var index = max(headScan, cursor)
        while index + 4 <= bytes.count {
            if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 { break }
            index += 1
        }
        guard index + 4 <= bytes.count else {
            headScan = max(cursor, bytes.count - 3)
            return false
        }
        let head = String(decoding: bytes[cursor..<index], as: UTF8.self)
        cursor = index + 4
        headScan = cursor
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        let parts = (lines.popFirst() ?? "").split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        var code = 0
        if parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let number = Int(parts[1]) { code = number }
        var fields = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append(HTTPHeaderField(name: String(line[..<colon]),
                                          value: String(line[line.index(after: colon)...].trimmingSpaces)))
        }
        if (100..<200).contains(code) && code != 101 { return true }  // interim: the final head follows
        status = code
        reason = parts.count == 3 ? String(parts[2]) : ""
        headers = fields
        headLength = cursor
        framing = bodyFraming()
        return true
    }

    /// RFC 9112 §6.3, for the head just parsed.
    private mutating func bodyFraming() -> Framing {
        let code = status ?? 0
        if isResponseToHead || (100..<200).contains(code) || code == 204 || code == 304 { return .done }
        let codings = headers.values(of: "Transfer-Encoding")
            .flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces.lowercased() }
        if let last = codings.last {
            isChunked = last == "chunked"
            return isChunked ? .chunkSize : .untilClose
        }
        let lengths = Set(headers.values(of: "Content-Length").flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces })
        guard let text = lengths.first else { return .untilClose }
        guard lengths.count == 1, !text.isEmpty, text.allSatisfy(\.isASCIIDigit), let length = Int(text) else {
            malformation = "bad Content-Length \(headers.values(of: "Content-Length"))"
            return .malformed
        }
        contentLength = length
        return length == 0 ? .done : .length(remaining: length)
    }

    /// Moves up to `limit` bytes from `cursor` into the body; returns how many.
    private mutating func takeBody(upTo limit: Int) -> Int {
        let count = min(limit, bytes.count - cursor)
        guard count > 0 else { return 0 }
        body.append(contentsOf: bytes[cursor..<(cursor + count)])
        cursor += count
        return count
    }

    /// The next CRLF-terminated line from `cursor`, consumed; `nil` until it is whole (or once
    /// it is longer than `maxLineLength`, which makes the response malformed).
    private mutating func takeLine() -> Substring? {
        var index = cursor
        while index + 1 < bytes.count, !(bytes[index] == 13 && bytes[index + 1] == 10) { index += 1 }
        guard index + 1 < bytes.count else {
            if bytes.count - cursor > Self.maxLineLength { fail("line over \(Self.maxLineLength) bytes in the body framing") }
            return nil
        }
        let line = String(decoding: bytes[cursor..<index], as: UTF8.self)
        cursor = index + 2
        return line[...]
    }

    private mutating func fail(_ reason: String) {
        malformation = reason
        framing = .malformed
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return text
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
