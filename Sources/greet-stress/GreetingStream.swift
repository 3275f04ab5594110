import GreetdClient

/// The streaming greeting as one request of a `--stream` run reads it: the events parsed so far
/// from the response body, and the event that ended the stream, if one did.
///
/// A plain value owned by its ``StressRequest``; loop-confined with it.
struct GreetingStream {
    /// The event type of each tick.
    static let thinking = "thinking"
    /// The event type of the answer, the last event of a stream that ran to its end.
    static let greeting = "greeting"
    /// The event type of a stream cut short by the server (deadline, shutdown).
    static let error = "error"

    private var parser = ServerSentEventParser()
    /// How much of the response body the parser has seen.
    private var parsedBodyBytes = 0
    /// The `greeting` or `error` event, once one arrived: the server's work is over.
    private(set) var end: ServerSentEvent?

    /// Whether the response's head says it is an event stream (`Content-Type: text/event-stream`,
    /// parameters allowed).
    static func isEventStream(_ response: HTTPResponseBuffer) -> Bool {
        guard let type = response.header("Content-Type") else { return false }
        return type.split(separator: ";", maxSplits: 1)[0].trimmingCharacters(in: " \t").lowercased() == "text/event-stream"
    }

    /// Parses the body bytes that arrived since the last call (once the head says it is an
    /// event stream) and returns the events they completed.
    mutating func read(_ response: HTTPResponseBuffer) -> [ServerSentEvent] {
        guard response.body.count > parsedBodyBytes, Self.isEventStream(response) else { return [] }
        let events = parser.append(contentsOf: response.body[parsedBodyBytes...])
        parsedBodyBytes = response.body.count
        if end == nil, let last = events.first(where: { $0.type == Self.greeting || $0.type == Self.error }) {
            end = last
        }
        return events
    }
}

extension Substring {
    /// Without leading and trailing characters from `set` (no Foundation here).
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return text
    }
}
