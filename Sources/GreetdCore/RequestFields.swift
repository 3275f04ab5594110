// Checks and formats for values a client controls, kept free of other dependencies so that the
// fuzz targets in `Fuzz/` can compile them on their own.

/// A client-supplied value as one `key=value` field of a log line: as is when it is printable
/// ASCII without spaces or quotes, else Go-quoted (`"/x status=200"`), so that a request target
/// cannot forge fields.
func logField(_ value: String) -> String {
    let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") }
    return plain ? value : goQuote(value)
}

/// A client's `X-Request-Id` if it is 1 to 64 characters of `A-Z a-z 0-9 . _ : -`, else `nil`.
func acceptableRequestID(_ value: String) -> String? {
    guard (1...64).contains(value.utf8.count), value.utf8.allSatisfy({ byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
    }) else { return nil }
    return value
}

/// What is wrong with a request's query, in words for the `400` body.
enum QueryProblem: Error, CustomStringConvertible {
    case malformedQuery(String)
    case badDuration(String, String, DurationParseError)
    case negative(String, String)

    var description: String {
        switch self {
        case .malformedQuery(let query):
            return "invalid query string \(goQuote(query))"
        case .badDuration(let name, let text, let error):
            return "invalid \(name) \(goQuote(text)): \(error)"
        case .negative(let name, let text):
            return "invalid \(name) \(goQuote(text)): must not be negative"
        }
    }
}
