import CLibevent
import EventHTTPSystem

/// The `Date` header's value (RFC 7231 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), formatted
/// once per second per server instead of once per reply.
///
/// evhttp adds `Date` to every reply that lacks one (`evhttp_maybe_add_date_header` in
/// `http.c`), formatting it with `evutil_date_rfc1123`: `gmtime` plus `strftime`, about 3,400
/// instructions a reply. ``LoopRequest`` adds this cached value at the same place in the header
/// list instead (after the responder's headers, before evhttp's `Content-Length`), so evhttp
/// skips its own. The text is byte for byte what evhttp writes (the C locale's day and month
/// names); the second is the loop's cached time (`event_base_gettimeofday_cached`), i.e. the
/// start of the current loop turn.
///
/// Ownership: a value type inside its ``LoopHTTPServer``; the buffer is allocated once.
/// Threading: loop-confined, like the server.
struct HTTPDateCache {
    private var second = Int.min
    /// 29 characters and a NUL.
    private var text = [CChar](repeating: 0, count: 30)

    private static let days = Array("SunMonTueWedThuFriSat".utf8)
    private static let months = Array("JanFebMarAprMayJunJulAugSepOctNovDec".utf8)

    /// Calls `body` with the NUL-terminated value for the second `now` falls in.
    mutating func withValue<R>(at now: timeval, _ body: (UnsafePointer<CChar>) -> R) -> R {
        let seconds = Int(now.tv_sec)
        if seconds != second {
            Self.format(seconds, into: &text)
            second = seconds
        }
        return text.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// The IMF-fixdate for `seconds` since 1970, as a string (for tests and logs).
    static func string(for seconds: Int) -> String {
        var text = [CChar](repeating: 0, count: 30)
        format(seconds, into: &text)
        return String(decoding: text.prefix(29).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes `Www, DD Mmm YYYY hh:mm:ss GMT` and a NUL into `text` (30 elements).
    private static func format(_ seconds: Int, into text: inout [CChar]) {
        var time = time_t(seconds)
        var parts = tm()
        // gmtime_r fails only for a year that does not fit an Int32: then keep the epoch.
        if gmtime_r(&time, &parts) == nil { parts = tm(); parts.tm_mday = 1; parts.tm_year = 70; parts.tm_wday = 4 }
        let day = Int(parts.tm_wday) * 3, month = Int(parts.tm_mon) * 3
        var bytes: [UInt8] = [days[day], days[day + 1], days[day + 2], 44, 32]  // "Www, "
        func two(_ value: Int32) {
            bytes.append(UInt8(48 + value / 10))
            bytes.append(UInt8(48 + value % 10))
        }
        two(parts.tm_mday)
        bytes += [32, months[month], months[month + 1], months[month + 2], 32]
        let year = Int32(1900) + parts.tm_year
        two(year / 100 % 100)
        two(year % 100)
        bytes.append(32)
        two(parts.tm_hour)
        bytes.append(58)
        two(parts.tm_min)
        bytes.append(58)
        two(parts.tm_sec)
        bytes += Array(" GMT".utf8)
        for (index, byte) in bytes.prefix(29).enumerated() { text[index] = CChar(bitPattern: byte) }
        text[29] = 0
    }
}
