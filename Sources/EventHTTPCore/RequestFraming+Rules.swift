/// The rules ``RequestFramer`` applies to a whole unit (a head, a trailer section, a chunk-size
/// line). Pure functions over bytes; each returns the first rule broken.

/// A request line's method and target, for the access line of a refused request.
struct RequestLine: Equatable {
    let method: String
    let target: String
}

/// What a head says about the framing of the request it starts.
struct HeadVerdict {
    enum Body: Equatable { case none, length(Int), chunked }
    /// The status to refuse with; `nil` when the head passes.
    var status: Int?
    var reason = ""
    var line: RequestLine?
    /// Offset in the head of the minor version digit to rewrite to `1` (`HTTP/1.2` → `HTTP/1.1`).
    var versionPatch: Int?
    var body = Body.none

    static func refuse(_ status: Int, _ reason: String, _ line: RequestLine? = nil) -> HeadVerdict {
        HeadVerdict(status: status, reason: reason, line: line)
    }
}

extension RequestFramer {
    /// `tchar` of RFC 9110 §5.6.2, by byte.
    private static let tokenTable: [Bool] = (0..<256).map { byte in
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }

    @inline(__always) static func isToken(_ byte: UInt8) -> Bool { tokenTable[Int(byte)] }

    /// A byte a field value may hold: anything but controls other than HTAB (NUL, a bare CR
    /// and the like would cut or change evhttp's C strings).
    @inline(__always) static func isFieldByte(_ byte: UInt8) -> Bool { byte >= 0x20 ? byte != 0x7F : byte == 9 }

    /// The methods evhttp 2.1 reads a body for (`evhttp_method_may_have_body`); for any other it
    /// reads none, so a declared body would be parsed as the next request.
    private static let bodyMethods: [[UInt8]] = ["POST", "PUT", "PATCH", "GET", "DELETE", "OPTIONS", "CONNECT"].map { Array($0.utf8) }

    private static let httpSlash = Array("HTTP/".utf8)
    private static let host = Array("host".utf8)
    private static let contentLength = Array("content-length".utf8)
    private static let transferEncoding = Array("transfer-encoding".utf8)
    private static let chunked = Array("chunked".utf8)

    /// Whether `bytes` equal `lowercase` ignoring ASCII case (`lowercase` has letters and `-`).
    @inline(__always) private static func equalsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ lowercase: [UInt8]) -> Bool {
        guard range.count == lowercase.count else { return false }
        var j = 0
        for k in range {
            let byte = bytes[k]
            let folded = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            if folded != lowercase[j] { return false }
            j += 1
        }
        return true
    }

    /// The lines of a section (each without its LF and the CR before it). The last line is the
    /// empty one that ends the section.
    private static func lines(_ bytes: UnsafeBufferPointer<UInt8>) -> HeadLines {
        HeadLines(bytes: bytes)
    }

    /// The LF-terminated lines of a head (a CR before the LF excluded), found as they are
    /// iterated: no array per head (one allocation per request less on the fast path).
    struct HeadLines: Sequence {
        let bytes: UnsafeBufferPointer<UInt8>

        struct Iterator: IteratorProtocol {
            let bytes: UnsafeBufferPointer<UInt8>
            var start = 0
            var index = 0

            mutating func next() -> Range<Int>? {
                while index < bytes.count {
                    let at = index
                    index += 1
                    guard bytes[at] == 10 else { continue }
                    var end = at
                    if end > start && bytes[end - 1] == 13 { end -= 1 }
                    defer { start = at + 1 }
                    return start..<end
                }
                return nil
            }
        }

        func makeIterator() -> Iterator { Iterator(bytes: bytes) }

        /// The first line (the request line), if a whole one is there.
        var first: Range<Int>? {
            var iterator = makeIterator()
            return iterator.next()
        }
    }

    /// Checks a field line (`name: value`); returns the name's end (the colon) or a reason.
    private static func fieldLine(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) -> Result<Int, FieldError> {
        let first = bytes[line.lowerBound]
        if first == 32 || first == 9 { return .failure(.init("obsolete line folding")) }
        var k = line.lowerBound
        while k < line.upperBound && isToken(bytes[k]) { k += 1 }
        guard k < line.upperBound, k > line.lowerBound else { return .failure(.init("invalid header field")) }
        if bytes[k] != 58 {  // ':'
            return .failure(.init(bytes[k] == 32 || bytes[k] == 9 ? "whitespace before a header field's colon" : "invalid header field name"))
        }
        for v in (k + 1)..<line.upperBound where !isFieldByte(bytes[v]) {
            return .failure(.init("invalid byte in a header field value"))
        }
        return .success(k)
    }

    struct FieldError: Error { let reason: String; init(_ reason: String) { self.reason = reason } }

    /// The value of a field line after its colon, without leading and trailing whitespace.
    private static func value(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, colon: Int) -> Range<Int> {
        var lower = colon + 1, upper = line.upperBound
        while lower < upper && (bytes[lower] == 32 || bytes[lower] == 9) { lower += 1 }
        while upper > lower && (bytes[upper - 1] == 32 || bytes[upper - 1] == 9) { upper -= 1 }
        return lower..<upper
    }

    /// Judges a whole head (request line, fields, the empty line).
    /// - Parameter lineOnly: judge the request line alone (a head still arriving, whose first
    ///   line is whole: an HTTP/0.9 request never sends the empty line).
    static func judgeHead(_ bytes: UnsafeBufferPointer<UInt8>, lineOnly: Bool = false) -> HeadVerdict {
        let lines = lines(bytes)
        guard let requestLine = lines.first else { return .refuse(400, "empty request") }
        // A CR anywhere but before an LF.
        for line in lines {
            for k in line where bytes[k] == 13 || bytes[k] == 0 { return .refuse(400, "bare CR or NUL in the head") }
        }
        // Request line: method SP target SP HTTP/d.d, single spaces.
        var k = requestLine.lowerBound
        while k < requestLine.upperBound && isToken(bytes[k]) { k += 1 }
        let methodRange = requestLine.lowerBound..<k
        guard !methodRange.isEmpty, k < requestLine.upperBound, bytes[k] == 32 else {
            return .refuse(400, "not an HTTP request line")
        }
        // The target runs to the last space (as evhttp reads it), so that a refused line is
        // logged with the target the client sent; a space inside it is itself refused below.
        let targetStart = k + 1
        var lastSpace = requestLine.upperBound - 1
        while lastSpace >= targetStart && bytes[lastSpace] != 32 { lastSpace -= 1 }
        let hasVersion = lastSpace >= targetStart
        let targetRange = targetStart..<(hasVersion ? lastSpace : requestLine.upperBound)
        // Made only when needed (a refusal, a chunked body): no strings on the fast path.
        func name() -> RequestLine? {
            guard !targetRange.isEmpty else { return nil }
            return RequestLine(method: String(decoding: UnsafeBufferPointer(rebasing: bytes[methodRange]), as: UTF8.self),
                               target: String(decoding: UnsafeBufferPointer(rebasing: bytes[targetRange]), as: UTF8.self))
        }
        guard hasVersion else {
            return .refuse(400, targetRange.isEmpty ? "not an HTTP request line" : "HTTP/0.9 is not supported", name())
        }
        for b in targetRange where bytes[b] <= 32 || bytes[b] == 0x7F {
            return .refuse(400, "not an HTTP request line", name())
        }
        guard !targetRange.isEmpty else { return .refuse(400, "not an HTTP request line", name()) }
        let version = (lastSpace + 1)..<requestLine.upperBound
        let digit = { (b: UInt8) in b >= 0x30 && b <= 0x39 }
        guard version.count >= 5, (0..<5).allSatisfy({ bytes[version.lowerBound + $0] == httpSlash[$0] }) else {
            return .refuse(400, "not an HTTP request line", name())
        }
        guard version.count == 8, digit(bytes[version.lowerBound + 5]), bytes[version.lowerBound + 6] == 0x2E,
              digit(bytes[version.lowerBound + 7]), bytes[version.lowerBound + 5] != 0x30 else {
            return .refuse(400, "unsupported HTTP version; use HTTP/1.1", name())
        }
        let major = bytes[version.lowerBound + 5] - 0x30, minor = bytes[version.lowerBound + 7] - 0x30
        guard major == 1 else { return .refuse(505, "HTTP version not supported; use HTTP/1.1", name()) }
        // evhttp refuses a request line shorter than `GET / HTTP/1.0`.
        guard requestLine.count >= 14 else { return .refuse(400, "request line too short", name()) }
        var verdict = HeadVerdict()
        if lineOnly { return verdict }
        if minor >= 2 { verdict.versionPatch = version.lowerBound + 7 }

        var hosts = 0, transferEncodings = 0, isChunked = false
        var declaredLength: Int?
        for line in lines.dropFirst() where !line.isEmpty {
            let colon: Int
            switch fieldLine(bytes, line) {
            case .success(let c): colon = c
            case .failure(let error): return .refuse(400, error.reason, name())
            }
            let fieldName = line.lowerBound..<colon
            switch fieldName.count {
            case 4 where equalsIgnoringCase(bytes, fieldName, host):
                hosts += 1
            case 14 where equalsIgnoringCase(bytes, fieldName, contentLength):
                let value = value(bytes, line, colon: colon)
                guard !value.isEmpty, value.count <= 18, value.allSatisfy({ digit(bytes[$0]) }) else {
                    return .refuse(400, "invalid Content-Length", name())
                }
                let n = value.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) }
                if let previous = declaredLength, previous != n { return .refuse(400, "conflicting Content-Length values", name()) }
                declaredLength = n
            case 17 where equalsIgnoringCase(bytes, fieldName, transferEncoding):
                transferEncodings += 1
                isChunked = equalsIgnoringCase(bytes, value(bytes, line, colon: colon), chunked)
            default:
                break
            }
        }
        if hosts > 1 || (minor >= 1 && hosts == 0) {
            return .refuse(400, "HTTP/1.1 needs exactly one Host header", name())
        }
        if transferEncodings > 0 {
            if declaredLength != nil { return .refuse(400, "Transfer-Encoding with Content-Length", name()) }
            if transferEncodings > 1 || !isChunked { return .refuse(501, "unsupported Transfer-Encoding; only chunked", name()) }
            verdict.body = .chunked
            verdict.line = name()
        } else if let declaredLength, declaredLength > 0 {
            verdict.body = .length(declaredLength)
        }
        if verdict.body != .none {
            let methodBytes = UnsafeBufferPointer(rebasing: bytes[methodRange])
            guard bodyMethods.contains(where: { $0.elementsEqual(methodBytes) }) else {
                return .refuse(400, "a body on a method that has none", name())
            }
        }
        return verdict
    }

    /// Judges a trailer section (field lines, then the empty line).
    static func judgeTrailer(_ bytes: UnsafeBufferPointer<UInt8>) -> HeadVerdict {
        for line in lines(bytes) where !line.isEmpty {
            for k in line where bytes[k] == 13 || bytes[k] == 0 { return .refuse(400, "bare CR or NUL in the trailer") }
            if case .failure(let error) = fieldLine(bytes, line) { return .refuse(400, error.reason) }
        }
        return HeadVerdict()
    }

    /// Judges a chunk-size line (with its LF): `1*HEXDIG [ BWS ";" extension ] CRLF`. Returns the
    /// size and, when something follows the digits, their end (the byte evhttp needs as a space).
    static func judgeChunkLine(_ line: [UInt8]) -> (size: Int, patch: Int?)? {
        var end = line.count - 1  // the LF
        if end > 0 && line[end - 1] == 13 { end -= 1 }
        var size = 0, k = 0
        while k < end, k < 16 {
            let byte = line[k]
            let value: Int
            switch byte {
            case 0x30...0x39: value = Int(byte - 0x30)
            case 0x41...0x46: value = Int(byte - 0x41 + 10)
            case 0x61...0x66: value = Int(byte - 0x61 + 10)
            default: value = -1
            }
            if value < 0 { break }
            size = size &* 16 &+ value  // wraps only past 15 digits, refused below
            k += 1
        }
        guard k > 0, k <= 15 else { return nil }
        if k == end { return (size, nil) }
        var s = k
        while s < end && (line[s] == 32 || line[s] == 9) { s += 1 }
        guard s < end, line[s] == 0x3B else { return nil }  // ';'
        for b in line[(s + 1)..<end] where !isFieldByte(b) { return nil }
        return (size, k)
    }
}
