import EventHTTPSystem
@testable import EventHTTPCore
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cached `Date` value is evhttp's format exactly (`evutil_date_rfc1123`: `strftime` with
/// `%a, %d %b %Y %H:%M:%S GMT` in the C locale), and a reply carries exactly one `Date`.
@Suite("HTTP Date header")
struct HTTPDateTests {
    private func strftimeDate(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        _ = gmtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func matchesStrftimeLikeEvhttp() {
        #expect(HTTPDateCache.string(for: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateCache.string(for: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")  // RFC 7231's example
        var seconds = 951_782_400  // 29 Feb 2000
        for _ in 0..<2_000 {
            #expect(HTTPDateCache.string(for: seconds) == strftimeDate(seconds))
            seconds += 86_400 * 7 + 3_607  // walks every weekday, month, hour, minute
        }
    }

    @Test func cacheFollowsTheSecond() {
        var cache = HTTPDateCache()
        let first = cache.withValue(at: timeval(tv_sec: 1_000_000_000, tv_usec: 0)) { String(cString: $0) }
        let same = cache.withValue(at: timeval(tv_sec: 1_000_000_000, tv_usec: 999_999)) { String(cString: $0) }
        let next = cache.withValue(at: timeval(tv_sec: 1_000_000_001, tv_usec: 0)) { String(cString: $0) }
        #expect(first == "Sun, 09 Sep 2001 01:46:40 GMT" && same == first)
        #expect(next == "Sun, 09 Sep 2001 01:46:41 GMT")
    }

    @Test func replyCarriesOneDateAndTheResponderCanSetItsOwn() throws {
        try withBase { base in
            let server = try LoopHTTPServer(base: base) { request in
                let headers = request.path == "/own" ? [("Date", "Thu, 01 Jan 1970 00:00:00 GMT")] : []
                request.respond(status: 200, headers: headers, body: "ok\n")
            }
            let port = try #require(server.bind(host: "127.0.0.1", port: 0).first?.port)
            for path in ["/", "/own"] {
                let client = try LoopbackConnection(port: port)
                try client.send("GET \(path) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                let closed = try Event(base: base, flags: .persist) { _ in
                    if base.counters.liveConnections.load(ordering: .relaxed) == 0 { base.exit() }
                }
                try closed.add(timeout: .milliseconds(1))
                let watchdog = try Watchdog(base, after: .seconds(10))
                try base.run()
                #expect(!watchdog.expired)
                let raw = try client.readResponse().raw
                let dates = raw.split(separator: "\r\n").filter { $0.hasPrefix("Date: ") }
                #expect(dates.count == 1, "\(raw)")
                let value = String(dates.first?.dropFirst(6) ?? "")
                if path == "/own" {
                    #expect(value == "Thu, 01 Jan 1970 00:00:00 GMT")
                } else {
                    // The loop's cached second, within a generous minute of the clock now.
                    let now = Int(time(nil))
                    #expect((now - 60...now + 1).contains { HTTPDateCache.string(for: $0) == value }, "\(value)")
                }
            }
            server.close()
        }
    }
}
