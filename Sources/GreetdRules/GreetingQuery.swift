import EventHTTPDuration
// The query rules of `GET /?delay=…&timeout=…`: the one definition, used by the server and by
// the query fuzzer (`Fuzz/query`).

/// What is wrong with a request's query; ``description`` is the `400` body (without the newline).
/// Every text quotes client bytes with ``GoDuration.quote(_:)``, so a body is one line of ASCII.
public enum QueryProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// A query that could not be split: `invalid query string "…"`. No query is refused so
    /// since greetd splits by Go's rules (``GreetingQuery/items(ofQuery:)``); kept for the text.
    case malformedQuery(String)
    /// A parameter (name, text) that is not a Go duration, with the parser's error.
    case badDuration(String, String, DurationParseError)
    /// A parameter (name, text) below zero.
    case negative(String, String)

    /// The `400` body: `invalid delay "5x": time: unknown unit "x" in duration "5x"`.
    public var description: String {
        switch self {
        // A value over the log's target limit is cut (with a marker) and not repeated: no 400
        // echoes a huge query back whole.
        case .malformedQuery(let query):
            return "invalid query string \(GoDuration.quote(cutForLog(query)))"
        case .badDuration(let name, let text, _) where text.utf8.count > loggedTargetLimit:
            return "invalid \(name) \(GoDuration.quote(cutForLog(text))): not a duration"
        case .badDuration(let name, let text, let error):
            return "invalid \(name) \(GoDuration.quote(text)): \(error)"
        case .negative(let name, let text):
            return "invalid \(name) \(GoDuration.quote(cutForLog(text))): must not be negative"
        }
    }
}

/// A greeting's `delay` and `timeout`, resolved from the request's query and the configuration.
///
/// Rules (the first `delay` and the first `timeout` count; other names are ignored):
/// - `delay=` is a Go duration, not negative; above `maxDelay` it is capped to `maxDelay`
///   (``delayWasCapped``). Without it, the configured `delay`.
/// - `timeout=` is a Go duration, not negative; it may shorten the configured timeout, never
///   lengthen it. `timeout=0` expires at once (Go's `context.WithTimeout(ctx, 0)`), unlike the
///   configuration's "no timeout" (`nil`).
public struct GreetingQuery: Equatable, Sendable {
    /// How long the greeting thinks.
    public var delay: GoDuration
    /// The greeting's deadline, from its start; `nil`: none.
    public var timeout: GoDuration?
    /// What `?delay=` asked for, when the query had one (before the cap).
    public var requestedDelay: GoDuration?

    /// A resolved query; ``resolve(_:delay:maxDelay:timeout:)`` is the way to make one from a request.
    public init(delay: GoDuration, timeout: GoDuration?, requestedDelay: GoDuration? = nil) {
        self.delay = delay
        self.timeout = timeout
        self.requestedDelay = requestedDelay
    }

    /// Whether `?delay=` asked for more than `maxDelay` (the answer says so in a header).
    public var delayWasCapped: Bool { requestedDelay.map { $0 > delay } ?? false }

    /// Applies the rules above to decoded query items (``items(ofQuery:)``'s, in order).
    /// - Parameters:
    ///   - delay: `--delay`, used when the query has none (not capped).
    ///   - maxDelay: `--max-delay`, the most `?delay=` may ask.
    ///   - timeout: `--timeout`; `nil`: no deadline unless the query sets one.
    /// - Throws: ``QueryProblem/badDuration(_:_:_:)`` or ``QueryProblem/negative(_:_:)`` for the
    ///   first bad value (`delay` is checked before `timeout`).
    public static func resolve(_ items: [(name: String, value: String)], delay: GoDuration, maxDelay: GoDuration,
                               timeout: GoDuration?) throws(QueryProblem) -> GreetingQuery {
        var query = GreetingQuery(delay: delay, timeout: timeout)
        if let text = items.first(where: { $0.name == "delay" })?.value {
            let asked = try parameter("delay", text)
            query.requestedDelay = asked
            query.delay = min(asked, maxDelay)
        }
        if let text = items.first(where: { $0.name == "timeout" })?.value {
            let asked = try parameter("timeout", text)
            query.timeout = timeout.map { min($0, asked) } ?? asked
        }
        return query
    }

    /// One parameter: a Go duration, not negative. Also the last word of ``RawGreetingQuery``
    /// on a value its byte scanner refuses, so both give the same error and 400 text.
    static func parameter(_ name: String, _ text: String) throws(QueryProblem) -> GoDuration {
        let value: GoDuration
        do {
            value = try GoDuration(parsing: text)
        } catch {
            throw .badDuration(name, text, error)
        }
        if value.nanoseconds < 0 { throw .negative(name, text) }
        return value
    }

    /// The reference split of a raw query into decoded items, by Go's `url.ParseQuery` rules
    /// where they differ from evhttp's, and evhttp's elsewhere (the query fuzzer checks both):
    /// - `&` separates arguments; empty ones are skipped (Go), where evhttp refuses the query;
    /// - an argument without `=` is a name with an empty value (Go), where evhttp refuses it;
    /// - names stay undecoded and an empty name is kept (no rule reads it);
    /// - values are decoded as `evhttp_decode_uri_internal(…, 1)` (`+` is a space, `%` and two
    ///   hex digits a byte, any other `%` itself), cut at a decoded NUL, invalid UTF-8 repaired.
    ///
    /// Simple and allocating on purpose: the yardstick for ``RawGreetingQuery``'s one pass.
    public static func items(ofQuery query: String) -> [(name: String, value: String)] {
        var items: [(name: String, value: String)] = []
        for argument in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let bytes = Array(argument)
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else {
                items.append((String(decoding: bytes, as: UTF8.self), ""))
                continue
            }
            let name = String(decoding: bytes[..<equals], as: UTF8.self)
            items.append((name, decodeValue(Array(bytes[(equals + 1)...]))))
        }
        return items
    }

    /// `evhttp_decode_uri_internal(value, …, 1)`, read back as `String(cString:)` would.
    private static func decodeValue(_ value: [UInt8]) -> String {
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < value.count {
            var c = value[i]
            if c == UInt8(ascii: "+") {
                c = UInt8(ascii: " ")
            } else if c == UInt8(ascii: "%"), i + 2 < value.count, let high = hex(value[i + 1]), let low = hex(value[i + 2]) {
                c = high << 4 | low
                i += 2
            }
            if c == 0 { break }
            out.append(c)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
