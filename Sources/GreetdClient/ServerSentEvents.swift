/// One server-sent event, as the HTML standard's "dispatch the event" step produces it.
public struct ServerSentEvent: Equatable, Sendable {
    /// The `event:` field, or `message` when the event had none.
    public var type: String
    /// The `data:` lines joined with `\n` (the last line's newline removed).
    public var data: String
    /// The last `id:` seen on the stream so far (it carries over to later events), or empty.
    public var lastEventID: String

    /// An event as a parser would dispatch it.
    public init(type: String = "message", data: String, lastEventID: String = "") {
        self.type = type
        self.data = data
        self.lastEventID = lastEventID
    }
}

/// An incremental `text/event-stream` parser (HTML Living Standard, "Server-sent events",
/// §9.2.6 "Interpreting an event stream"): feed it the response *body* as it arrives, in pieces
/// of any size, and it returns the events completed by each piece.
///
/// - Lines end with CRLF, LF or CR; a CRLF split across two pieces is one line end.
/// - A line starting with `:` is a comment (counted in ``comments``, otherwise ignored).
/// - `field: value` (one leading space of the value dropped); `field` alone has an empty value.
///   `event` sets the type, `data` adds a line, `id` sets ``lastEventID`` (unless it contains
///   NUL), `retry` with ASCII digits only sets ``retry``; other fields are ignored.
/// - A blank line dispatches the event, unless no `data` line came (then the event is dropped,
///   as the standard says).
/// - A UTF-8 byte order mark at the very start is skipped. Bytes are decoded as UTF-8 per line
///   (invalid sequences become U+FFFD).
/// - At the end of the stream, an event not yet ended by a blank line is discarded:
///   ``hasIncompleteEvent`` says whether one was pending.
///
/// It does not look at the HTTP framing: give it ``HTTPResponseBuffer/body`` (chunked framing
/// already removed). A plain value; whoever holds it owns it. Not thread-confined.
public struct ServerSentEventParser: Sendable {
    /// The `retry:` reconnection time in milliseconds, once the stream set one.
    public private(set) var retry: Int?
    /// The last event ID (`id:` field); carried into every later event.
    public private(set) var lastEventID = ""
    /// Comment lines seen (`:` first), such as keep-alives.
    public private(set) var comments = 0
    /// Events dispatched so far.
    public private(set) var dispatched = 0

    private var line: [UInt8] = []
    private var eventType = ""
    private var dataBuffer = ""
    private var hasData = false
    /// The last piece ended with CR: an LF starting the next piece belongs to that line end.
    private var afterCR = false
    /// Bytes of a possible byte order mark seen at the start (0...3); -1 once past it.
    private var bomState = 0
    /// A field line since the last dispatch (so an event is under way).
    private var fieldSinceDispatch = false

    /// A parser at the start of a stream.
    public init() {}

    /// Whether an event has begun (a field line, or part of a line) but no blank line has ended
    /// it yet: at the end of the stream, that event is lost.
    public var hasIncompleteEvent: Bool { fieldSinceDispatch || !line.isEmpty }

    /// Parses `bytes`, the next piece of the body; returns the events it completed, in order.
    public mutating func append<Bytes: Collection>(contentsOf bytes: Bytes) -> [ServerSentEvent] where Bytes.Element == UInt8 {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if bomState >= 0 {
                let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
                if byte == bom[bomState] {
                    bomState += 1
                    if bomState == 3 { bomState = -1 }
                    continue
                }
                // Not a byte order mark after all: what was held back is line content.
                line.append(contentsOf: bom[0..<bomState])
                bomState = -1
            }
            switch byte {
            case 10:  // LF
                if afterCR {
                    afterCR = false  // the second half of a CRLF
                } else {
                    endLine(into: &events)
                }
            case 13:  // CR
                afterCR = true
                endLine(into: &events)
            default:
                afterCR = false
                line.append(byte)
            }
        }
        return events
    }

    private mutating func endLine(into events: inout [ServerSentEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        guard !line.isEmpty else {
            dispatch(into: &events)
            return
        }
        if line[0] == UInt8(ascii: ":") {
            comments += 1
            return
        }
        fieldSinceDispatch = true
        let name: String
        var value = ""
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            name = String(decoding: line[..<colon], as: UTF8.self)
            var start = colon + 1
            if start < line.count, line[start] == UInt8(ascii: " ") { start += 1 }
            value = String(decoding: line[start...], as: UTF8.self)
        } else {
            name = String(decoding: line, as: UTF8.self)
        }
        switch name {
        case "event":
            eventType = value
        case "data":
            if hasData { dataBuffer += "\n" }
            dataBuffer += value
            hasData = true
        case "id":
            if !value.unicodeScalars.contains("\0") { lastEventID = value }
        case "retry":
            if !value.isEmpty, value.utf8.allSatisfy({ (48...57).contains($0) }), let milliseconds = Int(value) {
                retry = milliseconds
            }
        default:
            break
        }
    }

    private mutating func dispatch(into events: inout [ServerSentEvent]) {
        defer {
            eventType = ""
            dataBuffer = ""
            hasData = false
            fieldSinceDispatch = false
        }
        guard hasData else { return }
        events.append(ServerSentEvent(type: eventType.isEmpty ? "message" : eventType, data: dataBuffer, lastEventID: lastEventID))
        dispatched += 1
    }
}
