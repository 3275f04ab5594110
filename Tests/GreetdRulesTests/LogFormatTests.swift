@testable import GreetdRules
import EventHTTPSystem
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The hand-written log timestamp agrees with the C library, and lines read as documented.
@Suite struct LogFormatTests {
    static func reference(_ time: LogTimestamp) -> String {
        var seconds = time_t(time.seconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let micros = String(Int(time.nanoseconds) / 1000)
        let prefix = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return prefix + "." + String(repeating: "0", count: 6 - micros.count) + micros + "Z"
    }

    private static func text(_ line: [UInt8]) -> String { String(decoding: line, as: UTF8.self) }

    @Test("timestamps match gmtime_r across leap years, month ends and centuries", arguments: [
        0, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_709_164_800, 1_798_761_599, 4_107_542_399, 4_102_444_800,
    ] as [Int64])
    func knownInstants(_ seconds: Int64) {
        let time = LogTimestamp(seconds: seconds, nanoseconds: 123_456_789)
        var line: [UInt8] = []
        appendUTCTimestamp(time, to: &line)
        #expect(Self.text(line) == Self.reference(time))
    }

    @Test("timestamps match gmtime_r for 10,000 random instants until 2200")
    func randomInstants() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let time = LogTimestamp(seconds: Int64.random(in: 0..<7_258_118_400, using: &generator),
                                    nanoseconds: Int32.random(in: 0..<1_000_000_000, using: &generator))
            var line: [UInt8] = []
            appendUTCTimestamp(time, to: &line)
            #expect(Self.text(line) == Self.reference(time))
        }
    }

    @Test("a line: timestamp, level, request id, message, then other fields sorted by key")
    func lineLayout() {
        let time = LogTimestamp(seconds: 1_795_603_730, nanoseconds: 123_456_000)
        let line = formatLogLine(level: .notice, message: "Context Error: context canceled", requestID: "17",
                                 fields: [("zeta", "1"), ("alpha", "x y")], at: time)
        #expect(Self.text(line)
            == "2026-11-25T10:48:50.123456Z notice [request_id=17] Context Error: context canceled alpha=x y zeta=1")
        let bare = formatLogLine(level: .info, message: "Server listening", at: time)
        #expect(Self.text(bare) == "2026-11-25T10:48:50.123456Z info Server listening")
    }

    @Test("control bytes in the message, request id or fields are escaped: one event, one line (fuzz regression)")
    func controlBytesEscaped() {
        let time = LogTimestamp(seconds: 1_795_603_730, nanoseconds: 0)
        let line = formatLogLine(level: .info, message: "a\nb\u{1b}[31m\r", requestID: "1\n2",
                                 fields: [("k\ney", "v\u{7f}")], at: time)
        #expect(Self.text(line)
            == #"2026-11-25T10:48:50.000000Z info [request_id=1\x0a2] a\x0ab\x1b[31m\x0d k\x0aey=v\x7f"#)
        #expect(!line.contains(10) && !line.contains(13) && !line.contains(0x1b))
    }

    @Test("sd-daemon priorities: trace/debug 7, info 6, notice 5, warning 4, error 3, critical 2", arguments: [
        (LogLevel.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
    ])
    func journalPriority(_ level: LogLevel, _ priority: Int) {
        #expect(level.journalPriority == priority)
        let line = formatLogLine(level: level, message: "m", at: LogTimestamp(seconds: 0, nanoseconds: 0), journalPriority: true)
        #expect(Self.text(line) == "<\(priority)>1970-01-01T00:00:00.000000Z \(level.rawValue) m")
    }

    @Test("levels order by severity, with swift-log's names")
    func levels() {
        #expect(LogLevel.allCases.map(\.rawValue) == ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        #expect(LogLevel.trace < .debug && .notice < .warning && .error < .critical)
        #expect(!(LogLevel.info < .info))
    }

    @Test("a request target is one log field: quoted when it has spaces, quotes or control bytes")
    func targetField() {
        #expect(logField("/?delay=1s") == "/?delay=1s")
        #expect(logField("/x status=200 bytes=14") == #""/x status=200 bytes=14""#)
        #expect(logField("/\u{1b}[31m\r") == #""/\x1b[31m\x0d""#)
        #expect(logField("/say\"hi\"") == #""/say\"hi\"""#)
        #expect(logField("") == #""""#)
    }

    @Test("a client's X-Request-Id: 1 to 64 of A-Z a-z 0-9 . _ : -, else refused")
    func requestIDs() {
        #expect(acceptableRequestID("stress-17") == "stress-17")
        #expect(acceptableRequestID("a.B_c:9-") == "a.B_c:9-")
        #expect(acceptableRequestID(String(repeating: "x", count: 64)) != nil)
        #expect(acceptableRequestID(String(repeating: "x", count: 65)) == nil)
        #expect(acceptableRequestID("") == nil)
        #expect(acceptableRequestID("a b") == nil)
        #expect(acceptableRequestID("a]") == nil)
        #expect(acceptableRequestID("a\nb") == nil)
        #expect(acceptableRequestID("é") == nil)
    }
}
