import EventHTTPDuration
// greetd's JSON log lines (`--log-format json`) and its access line, as pure functions: the
// handler in GreetdCore writes what these return.
//
//     {"time":"2026-11-25T10:48:50.123456Z","level":"info","request_id":"7f3a9c21-17","msg":"Greetings are hard. Thinking..."}
//     {"time":"…","level":"info","request_id":"7f3a9c21-18","msg":"access","method":"GET","target":"/",
//      "status":200,"bytes":14,"duration_seconds":0.0012,"remote":"127.0.0.1:5555","proto":"HTTP/1.1","user_agent":"curl/8.5.0"}
//
// One object per line, `time` (RFC 3339, UTC, microseconds), `level`, `request_id` when there
// is one, `msg` (the text line's message, word for word), then the other fields.

/// How greetd writes its log lines: `--log-format`.
public enum LogOutputFormat: String, CaseIterable, Sendable {
    /// `2026-11-25T10:48:50.123456Z info [request_id=…] message key=value` (``formatLogLine(level:message:requestID:fields:at:journalPriority:timestamp:)``).
    case text
    /// One JSON object per line (``formatJSONLogLine(level:message:requestID:fields:at:)``).
    case json
}

/// A field's value in a JSON line: typed, so that a reader gets `"status":200`, not `"200"`.
public enum LogValue: Equatable, Sendable {
    /// A JSON string.
    case string(String)
    /// A JSON integer.
    case int(Int)
    /// A JSON number (finite; a non-finite one is written as `null`).
    case double(Double)
}

/// The keys a JSON line always has; a field with one of these names is written as `_<name>`,
/// so that it can neither hide nor forge them.
private let reservedJSONKeys: Set<String> = ["time", "level", "msg", requestIDKey]

/// Formats one JSON log line (without the newline), as UTF-8 bytes: `time`, `level`,
/// `request_id` (when given), `msg`, then `fields` in the order given.
///
/// Strings are escaped as JSON requires (`"`, `\`, and control bytes as `\u00XX`, `0x7f` too),
/// so a client's bytes can never end the object or the line.
public func formatJSONLogLine(level: LogLevel, message: String, requestID: String? = nil,
                              fields: [(key: String, value: LogValue)] = [], at time: LogTimestamp) -> [UInt8] {
    var line: [UInt8] = []
    line.reserveCapacity(96 + message.utf8.count)
    line.append(contentsOf: #"{"time":""#.utf8)
    appendUTCTimestamp(time, to: &line)
    line.append(contentsOf: #"","level":""#.utf8)
    line.append(contentsOf: level.rawValue.utf8)
    line.append(UInt8(ascii: "\""))
    if let requestID {
        line.append(contentsOf: #","request_id":"#.utf8)
        appendJSONString(requestID, to: &line)
    }
    line.append(contentsOf: #","msg":"#.utf8)
    appendJSONString(message, to: &line)
    for (key, value) in fields {
        line.append(UInt8(ascii: ","))
        appendJSONString(reservedJSONKeys.contains(key) ? "_" + key : key, to: &line)
        line.append(UInt8(ascii: ":"))
        switch value {
        case .string(let text): appendJSONString(text, to: &line)
        case .int(let number): line.append(contentsOf: String(number).utf8)
        case .double(let number): line.append(contentsOf: (number.isFinite ? "\(number)" : "null").utf8)
        }
    }
    line.append(UInt8(ascii: "}"))
    return line
}

/// Appends `text` as a JSON string, quotes included.
func appendJSONString(_ text: String, to line: inout [UInt8]) {
    line.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""): line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0..<0x20, 0x7f:
            line.append(contentsOf: "\\u00".utf8)
            line.append(jsonHexDigits[Int(byte >> 4)])
            line.append(jsonHexDigits[Int(byte & 0xf)])
        default: line.append(byte)
        }
    }
    line.append(UInt8(ascii: "\""))
}

private let jsonHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// The most bytes of a request target (or any client text) a log line or an error body shows.
public let loggedTargetLimit = 2048

/// `text` as a log line or an error body may show it: whole up to `limit` UTF-8 bytes, else its
/// first `limit` bytes and a marker with the full size, `…(cut, 61440 bytes)`. A 60 KB target
/// must not make a 60 KB log line, nor be echoed back whole. Pure; any thread.
public func cutForLog(_ text: String, limit: Int = loggedTargetLimit) -> String {
    let count = text.utf8.count
    guard count > limit else { return text }
    // Cut on a scalar boundary at or before `limit` bytes: no half a UTF-8 sequence.
    var kept = 0
    var end = text.unicodeScalars.startIndex
    for scalar in text.unicodeScalars {
        let width = scalar.utf8.count
        guard kept + width <= limit else { break }
        kept += width
        end = text.unicodeScalars.index(after: end)
    }
    return String(text.unicodeScalars[..<end]) + "…(cut, \(count) bytes)"
}

/// One request as the access log shows it. Pure data; the text and JSON forms are built from it.
public struct AccessRecord: Sendable {
    /// The method as sent (`GET`), or `-`.
    public var method: String
    /// The request target as sent, or `-`; cut by ``cutForLog(_:limit:)`` when written.
    public var target: String
    /// The status sent (`499` when the client went away before any reply).
    public var status: Int
    /// Body bytes sent.
    public var bytes: Int
    /// From the request's arrival to its end.
    public var duration: Duration
    /// The client as `address:port` (`[::1]:5555` for IPv6), or `-` when unknown.
    public var remote: String
    /// The request's version, `HTTP/1.1` or `HTTP/1.0`, or `-` when unknown.
    public var proto: String
    /// The `User-Agent` header; empty when none.
    public var userAgent: String

    /// A record; every field as described on its property.
    public init(method: String, target: String, status: Int, bytes: Int, duration: Duration,
                remote: String = "-", proto: String = "-", userAgent: String = "") {
        self.method = method
        self.target = target
        self.status = status
        self.bytes = bytes
        self.duration = duration
        self.remote = remote
        self.proto = proto
        self.userAgent = userAgent
    }

    /// The text line's message: `access method=GET target=/ status=200 duration=1.2ms bytes=14
    /// remote=127.0.0.1:5555 proto=HTTP/1.1 user_agent="curl/8.5.0"`. Client-controlled values
    /// go through ``logField(_:)`` (the user agent is always quoted), so none can forge a field.
    public var textMessage: String {
        "access method=\(logField(method)) target=\(logField(cutForLog(target))) status=\(status) duration=\(GoDuration(duration)) bytes=\(bytes) remote=\(logField(remote)) proto=\(logField(proto)) user_agent=\(GoDuration.quote(cutForLog(userAgent)))"
    }

    /// The JSON line's fields after `msg` (which is `access`): typed `status`, `bytes` and
    /// `duration_seconds`.
    public var jsonFields: [(key: String, value: LogValue)] {
        let (seconds, attoseconds) = duration.components
        return [
            ("method", .string(method)), ("target", .string(cutForLog(target))), ("status", .int(status)),
            ("bytes", .int(bytes)), ("duration_seconds", .double(Double(seconds) + Double(attoseconds) / 1e18)),
            ("remote", .string(remote)), ("proto", .string(proto)), ("user_agent", .string(cutForLog(userAgent))),
        ]
    }
}
