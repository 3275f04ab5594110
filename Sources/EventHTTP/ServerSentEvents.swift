public import HTTPTypes

/// One server-sent event (`text/event-stream`, WHATWG HTML §9.2).
public struct ServerSentEvent: Sendable, Equatable {
    /// `event:`, the event's type; `nil` for the default `message`.
    public var event: String?
    /// `id:`, what the client sends back as `Last-Event-ID` when it reconnects.
    public var id: String?
    /// The data; each line becomes its own `data:` line.
    public var data: String
    /// `retry:`, the reconnection delay the client should use.
    public var retry: Duration?

    /// An event.
    public init(event: String? = nil, id: String? = nil, data: String, retry: Duration? = nil) {
        self.event = event
        self.id = id
        self.data = data
        self.retry = retry
    }

    /// The event as it goes on the wire, ending with the blank line. Line breaks in `event` and
    /// `id` (which would forge fields) are dropped; `data` is split on `\n`, `\r\n` and `\r`.
    public var encoded: String {
        var text = ""
        if let event { text += "event: \(Self.oneLine(event))\n" }
        if let id { text += "id: \(Self.oneLine(id))\n" }
        if let retry {
            let (seconds, attoseconds) = retry.components
            text += "retry: \(seconds * 1000 + attoseconds / 1_000_000_000_000_000)\n"
        }
        let normalized = data.replacing("\r\n", with: "\n").replacing("\r", with: "\n")
        for line in normalized.split(separator: "\n", omittingEmptySubsequences: false) {
            text += "data: \(line)\n"
        }
        return text + "\n"
    }

    static func oneLine(_ text: String) -> String {
        text.filter { $0 != "\n" && $0 != "\r" }
    }
}

/// Writes an event stream: events, comments, with backpressure (see ``ResponseBodyWriter``).
public struct EventStreamWriter: Sendable {
    let writer: ResponseBodyWriter

    /// Sends `event`.
    /// - Throws: ``ResponseError/clientGone(_:)`` once the client has left.
    public func send(_ event: ServerSentEvent) async throws(ResponseError) {
        try await writer.write(event.encoded)
    }

    /// Sends a comment line (`: text`), which clients ignore: keeps proxies from timing out.
    public func comment(_ text: String) async throws(ResponseError) {
        try await writer.write(": \(ServerSentEvent.oneLine(text))\n\n")
    }
}

extension Response {
    /// An event stream: `200`, `Content-Type: text/event-stream`, `Cache-Control: no-cache` and
    /// `X-Accel-Buffering: no` (so nginx does not buffer it), then `body` writes events.
    ///
    /// - Parameters:
    ///   - status: the status (`200` by default).
    ///   - headers: extra header fields; the three above are always set.
    ///   - heartbeat: send the comment `: keep-alive` every interval from the stream's start,
    ///     whether or not events flow; `nil` for none. It stops when `body` returns.
    ///   - body: writes the events. The stream ends when it returns; it runs in the handler's Task,
    ///     cancelled when the client leaves. Read the reconnecting client's ``Request/lastEventID``.
    public static func eventStream(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], heartbeat: Duration? = nil,
                                   _ body: @escaping @Sendable (EventStreamWriter) async throws -> Void) -> Response {
        var headers = headers
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(status: status, headers: headers, body: .stream { writer in
            let events = EventStreamWriter(writer: writer)
            guard let heartbeat, heartbeat > .zero else {
                try await body(events)
                return
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                // A child task inherits the handler's executor preference: it runs on the loop.
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        try await events.comment("keep-alive")
                    }
                }
                defer { group.cancelAll() }
                try await body(events)
            }
        })
    }
}
