@testable import GreetdCore
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The hand-written log timestamp agrees with the C library, and lines read as documented.
@Suite struct LogFormatTests {
    static func reference(_ time: timespec) -> String {
        var seconds = time_t(time.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let micros = String(Int(time.tv_nsec) / 1000)
        let prefix = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return prefix + "." + String(repeating: "0", count: 6 - micros.count) + micros + "Z"
    }

    @Test("timestamps match gmtime_r across leap years, month ends and centuries", arguments: [
        0, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_709_164_800, 1_798_761_599, 4_107_542_399, 4_102_444_800,
    ])
    func knownInstants(_ seconds: Int) {
        let time = timespec(tv_sec: seconds, tv_nsec: 123_456_789)
        var line: [UInt8] = []
        appendUTCTimestamp(time, to: &line)
        #expect(String(decoding: line, as: UTF8.self) == Self.reference(time))
    }

    @Test("timestamps match gmtime_r for 10,000 random instants until 2200")
    func randomInstants() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let time = timespec(tv_sec: Int.random(in: 0..<7_258_118_400, using: &generator),
                                tv_nsec: Int.random(in: 0..<1_000_000_000, using: &generator))
            var line: [UInt8] = []
            appendUTCTimestamp(time, to: &line)
            #expect(String(decoding: line, as: UTF8.self) == Self.reference(time))
        }
    }

    @Test("a line: timestamp, level, request id, message, then other metadata sorted")
    func lineLayout() {
        let time = timespec(tv_sec: 1_795_603_730, tv_nsec: 123_456_000)
        let line = formatLogLine(level: .notice, message: "Context Error: context canceled",
                                 metadata: ["request_id": "17", "zeta": "1", "alpha": "x y"], at: time)
        #expect(String(decoding: line, as: UTF8.self)
            == "2026-11-25T10:48:50.123456Z notice [request_id=17] Context Error: context canceled alpha=x y zeta=1")
        let bare = formatLogLine(level: .info, message: "Server listening", metadata: [:], at: time)
        #expect(String(decoding: bare, as: UTF8.self) == "2026-11-25T10:48:50.123456Z info Server listening")
    }

    @Test("control bytes in the message or metadata are escaped: one event, one line (fuzz regression)")
    func controlBytesEscaped() {
        let time = timespec(tv_sec: 1_795_603_730, tv_nsec: 0)
        let line = formatLogLine(level: .info, message: "a\nb\u{1b}[31m\r",
                                 metadata: ["request_id": "1\n2", "k\ney": "v\u{7f}"], at: time)
        #expect(String(decoding: line, as: UTF8.self)
            == #"2026-11-25T10:48:50.000000Z info [request_id=1\x0a2] a\x0ab\x1b[31m\x0d k\x0aey=v\x7f"#)
        #expect(!line.contains(10) && !line.contains(13) && !line.contains(0x1b))
    }

    @Test("a request target is one log field: quoted when it has spaces, quotes or control bytes")
    func targetField() {
        #expect(logField("/?delay=1s") == "/?delay=1s")
        #expect(logField("/x status=200 bytes=14") == #""/x status=200 bytes=14""#)
        #expect(logField("/\u{1b}[31m\r") == #""/\x1b[31m\x0d""#)
        #expect(logField("/say\"hi\"") == #""/say\"hi\"""#)
        #expect(logField("") == #""""#)
    }
}
