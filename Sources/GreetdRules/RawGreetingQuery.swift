import EventHTTPDuration
// The fast path of a greeting's query: the parameters greetd reads, found in one pass over the
// raw query's bytes, with no array of pairs and no String unless a value is refused.

/// A request's raw query (`delay=2s&timeout=1s`, as `evhttp_uri_get_query` gives it, in a Swift
/// string), split by Go's `url.ParseQuery` rules, without allocating: the first value of each
/// name greetd reads (`delay`, `timeout`, `stream`, `async`) is kept as a byte range and decoded
/// only when it is used.
///
/// The rules, byte for byte (the query fuzzer, `Fuzz/query`, compares it with
/// ``GreetingQuery/items(ofQuery:)`` plus ``GreetingQuery/resolve(_:delay:maxDelay:timeout:)`` on
/// every input, and that split with evhttp's wherever evhttp accepts the query):
/// - arguments are separated by `&`; empty arguments (`&&`, a leading or trailing `&`) are
///   skipped, as Go skips them: names greetd does not read never make a query malformed;
/// - an argument without `=` is a name with an empty value (`?delay` is judged as `delay=`), as
///   in Go; an empty name (`=x`) is no name greetd reads;
/// - the name is compared undecoded, the value is everything after the first `=`;
/// - a value is decoded as `evhttp_decode_uri_internal(…, 1)`: `+` is a space, `%` and two hex
///   digits is that byte, any other `%` stays; it then ends at its first NUL byte and invalid
///   UTF-8 is repaired, as `String(cString:)` reads evhttp's C string.
///
/// Pure and `Sendable`; any thread.
public struct RawGreetingQuery: Sendable {
    /// The query as the request carries it; `nil`: the target had no `?`.
    public let query: String?
    private var delay: Range<Int>?
    private var timeout: Range<Int>?
    private var stream: Range<Int>?
    private var async: Range<Int>?

    /// Scans `query` once (none at all: nothing to scan, no allocation).
    /// - Throws: nothing since every query splits (Go's rules); kept `throws` so that callers
    ///   stay source-compatible should a split rule ever refuse a query again.
    public init(_ query: String?) throws(QueryProblem) {
        self.query = query
        guard let query, !query.isEmpty else { return }
        let scanned = query.utf8.withContiguousStorageIfAvailable { Self.scan($0) }
            ?? Array(query.utf8).withUnsafeBufferPointer { Self.scan($0) }
        (delay, timeout, stream, async) = scanned
    }

    private typealias Fields = (delay: Range<Int>?, timeout: Range<Int>?, stream: Range<Int>?, async: Range<Int>?)

    /// Go's split: the first value of each name read.
    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Fields {
        var fields: Fields = (nil, nil, nil, nil)
        let end = bytes.count
        var start = 0
        while start < end {
            var ampersand = start
            while ampersand < end, bytes[ampersand] != UInt8(ascii: "&") { ampersand += 1 }
            var equals = start
            while equals < ampersand, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
            // No `=`: the whole argument is the name and the value is empty (an empty argument
            // has an empty name, which matches nothing below: skipped).
            let value = equals == ampersand ? ampersand..<ampersand : (equals + 1)..<ampersand
            let name = UnsafeBufferPointer(rebasing: bytes[start..<equals])
            switch name.count {
            case 5:
                if fields.delay == nil, Self.matches(name, "delay") {
                    fields.delay = value
                } else if fields.async == nil, Self.matches(name, "async") {
                    fields.async = value
                }
            case 6:
                if fields.stream == nil, Self.matches(name, "stream") { fields.stream = value }
            case 7:
                if fields.timeout == nil, Self.matches(name, "timeout") { fields.timeout = value }
            default:
                break
            }
            start = ampersand + 1
        }
        return fields
    }

    /// Whether `name` is `expected`'s bytes (an ASCII literal of the same length).
    @inline(__always)
    private static func matches(_ name: UnsafeBufferPointer<UInt8>, _ expected: StaticString) -> Bool {
        guard name.count == expected.utf8CodeUnitCount else { return false }
        return expected.withUTF8Buffer { name.elementsEqual($0) }
    }

    /// Whether the first `stream` value is `1` (the streaming greeting).
    public var asksForStream: Bool { isOne(stream) }
    /// Whether the first `async` value is `1` (the async greeting).
    public var asksForAsync: Bool { isOne(async) }

    /// ``GreetingQuery/resolve(_:delay:maxDelay:timeout:)``'s rules on this query, with the same
    /// results and the same errors (`delay` is checked before `timeout`).
    public func resolve(delay: GoDuration, maxDelay: GoDuration, timeout: GoDuration?) throws(QueryProblem) -> GreetingQuery {
        var resolved = GreetingQuery(delay: delay, timeout: timeout)
        if let range = self.delay {
            let asked = try parameter("delay", range)
            resolved.requestedDelay = asked
            resolved.delay = min(asked, maxDelay)
        }
        if let range = self.timeout {
            let asked = try parameter("timeout", range)
            resolved.timeout = timeout.map { min($0, asked) } ?? asked
        }
        return resolved
    }

    private enum ValueResult {
        case duration(GoDuration)
        /// Refused: the decoded text, for the error.
        case refused(String)
    }

    /// One parameter: a Go duration, not negative. Decodes into stack memory only when the value
    /// has a `%` or a `+`; builds a String only to report a refused value.
    private func parameter(_ name: String, _ range: Range<Int>) throws(QueryProblem) -> GoDuration {
        let result = withValue(range) { (value: UnsafeBufferPointer<UInt8>) -> ValueResult in
            if case .success(let nanoseconds) = GoDuration.nanoseconds(parsing: value), nanoseconds >= 0 {
                return .duration(GoDuration(nanoseconds: nanoseconds))
            }
            return .refused(String(decoding: value, as: UTF8.self))
        }
        switch result {
        case .duration(let value):
            return value
        case .refused(let text):
            // The String path, the reference rules' own, gives the error and its text (and would
            // have the last word should the two parsers ever disagree; the fuzzer checks they don't).
            return try GreetingQuery.parameter(name, text)
        }
    }

    /// Whether the value at `range` decodes to `1`.
    private func isOne(_ range: Range<Int>?) -> Bool {
        guard let range else { return false }
        return withValue(range) { $0.count == 1 && $0[0] == UInt8(ascii: "1") }
    }

    /// Calls `body` with the decoded value at `range` (cut at its first NUL): the query's own
    /// bytes when there is nothing to decode, else a stack buffer.
    private func withValue<R>(_ range: Range<Int>, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let query = self.query ?? ""
        func run(_ bytes: UnsafeBufferPointer<UInt8>) -> R {
            let raw = UnsafeBufferPointer(rebasing: bytes[range])
            guard raw.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return body(raw) }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: raw.count) { buffer in
                let count = decodeQueryValue(raw, into: buffer)
                return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        }
        return query.utf8.withContiguousStorageIfAvailable(run) ?? Array(query.utf8).withUnsafeBufferPointer(run)
    }
}

/// `evhttp_decode_uri_internal(value, length, out, 1)` (`+` is a space; `%` and two hex digits
/// is that byte; any other byte, a lone `%` included, is itself), stopping at the first decoded
/// NUL as a C string reader would. `out` holds at least `value.count` bytes.
/// - Returns: the number of bytes written.
func decodeQueryValue(_ value: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
    @inline(__always) func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    let length = value.count
    var i = 0, j = 0
    while i < length {
        var c = value[i]
        if c == UInt8(ascii: "+") {
            c = UInt8(ascii: " ")
        } else if i + 2 < length, c == UInt8(ascii: "%"), let high = hex(value[i + 1]), let low = hex(value[i + 2]) {
            c = high << 4 | low
            i += 2
        }
        if c == 0 { break }
        out[j] = c
        j += 1
        i += 1
    }
    return j
}
