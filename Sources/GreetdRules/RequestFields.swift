import EventHTTPDuration
// Checks and formats for values a client controls: what may go into a log line or back out in a
// header. Pure; the fuzz targets (`Fuzz/requestid`, `Fuzz/logfield`) call these very functions.

/// The metadata key of a request's id; the log line shows it as `[request_id=N]` after the level.
public let requestIDKey = "request_id"

/// A client-supplied value as one `key=value` field of a log line: as is when it is printable
/// ASCII without spaces or quotes, else Go-quoted (`"/x status=200"`), so that a request target
/// cannot forge fields. ``LogLine/field(_:)`` reads it back. Pure; any thread.
public func logField(_ value: String) -> String {
    let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") }
    return plain ? value : GoDuration.quote(value)
}

/// A client's `X-Request-Id` if it is 1 to 64 characters of `A-Z a-z 0-9 . _ : -`, else `nil`
/// (then greetd names the request by its own number). An accepted id is safe in a header and a
/// log line: no space, control byte or `]`. Pure; any thread.
public func acceptableRequestID(_ value: String) -> String? {
    guard (1...64).contains(value.utf8.count), value.utf8.allSatisfy({ byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
    }) else { return nil }
    return value
}
