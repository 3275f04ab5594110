import EventHTTPCore

/// Which greeting a `GET /` (or `HEAD /`) gets.
enum GreetingKind: Equatable {
    /// The timer greeting (``Greeting``): the design card's timer events.
    case timer
    /// `?async=1`: the same greeting as an async handler sleeping on loop timers
    /// (``AsyncGreeting`` in ``AsyncGreeting/Mode/plain`` mode). For the benchmarks.
    case async
    /// `Accept: text/event-stream` or `?stream=1`: the streaming (SSE) greeting, the timer
    /// greeting's stream mode (``Greeting``); with `?async=1`, ``AsyncGreeting`` in
    /// ``AsyncGreeting/Mode/events`` mode (the library's async stream, for the benchmarks).
    case events

    /// The kind `request`, whose query is `query`, asks for. The stream wins over `?async=1`.
    init(_ request: LoopRequest, query: RawGreetingQuery) {
        if query.asksForStream || request.header("Accept").map(acceptsEventStream) == true {
            self = .events
        } else if query.asksForAsync {
            self = .async
        } else {
            self = .timer
        }
    }
}

/// Whether an `Accept` header value asks for `text/event-stream` (RFC 9110 §12.5.1).
///
/// The value is a comma-separated list of media ranges, each with optional `;`-separated
/// parameters. A range counts when its type is `text/event-stream` (case-insensitive, spaces
/// around it ignored) and its weight is above 0: `text/event-stream;q=0.9, */*` asks,
/// `text/event-stream;q=0` does not. A `q` that is not a number is ignored (the range counts),
/// as Go's reference server reads it. Wildcards (`*/*`, `text/*`) do not ask: curl sends `*/*`
/// and wants the plain greeting.
///
/// Only the first `Accept` header line is read (evhttp's `evhttp_find_header`); clients send one.
func acceptsEventStream(_ accept: String) -> Bool {
    for range in accept.split(separator: ",") {
        var parts = range.split(separator: ";", omittingEmptySubsequences: false).makeIterator()
        guard let type = parts.next(),
              type.trimmingSpaces.lowercased() == "text/event-stream" else { continue }
        var weight = 1.0
        while let parameter = parts.next() {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, pair[0].trimmingSpaces.lowercased() == "q",
                  let value = Double(pair[1].trimmingSpaces) else { continue }
            weight = value
        }
        if weight > 0 { return true }
    }
    return false
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate var trimmingSpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = lastIndex(where: { !isSpace($0) })!
        return self[first...last]
    }
}
