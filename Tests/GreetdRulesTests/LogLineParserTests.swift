import GreetdRules
import Testing
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `LogLine(parsing:)` reads back what `formatLogLine` writes.
@Suite struct LogLineParserTests {
    private let time = LogTimestamp(seconds: 1_795_603_730, nanoseconds: 123_456_000)

    private func line(_ level: LogLevel, _ message: String, requestID: String? = nil,
                      fields: [(key: String, value: String)] = [], priority: Bool = false) -> String {
        String(decoding: formatLogLine(level: level, message: message, requestID: requestID, fields: fields,
                                       at: time, journalPriority: priority), as: UTF8.self)
    }

    @Test("a request's line: time, level, request id and message come back")
    func requestLine() throws {
        let parsed = try #require(LogLine(parsing: line(.info, "Greetings are hard. Thinking...", requestID: "stress-3")))
        #expect(parsed.time == time)
        #expect(parsed.level == .info)
        #expect(parsed.requestID == "stress-3")
        #expect(parsed.message == "Greetings are hard. Thinking...")
        #expect(parsed.priority == nil)
    }

    @Test("a line without a request id, with fields, a priority prefix and a trailing newline")
    func plainLine() throws {
        let text = line(.notice, "Draining: stopped accepting connections", fields: [("in_flight", "3"), ("budget", "10s")],
                        priority: true) + "\n"
        let parsed = try #require(LogLine(parsing: text))
        #expect(parsed.priority == 5)
        #expect(parsed.level == .notice)
        #expect(parsed.requestID == nil)
        #expect(parsed.message == "Draining: stopped accepting connections budget=10s in_flight=3")
        #expect(parsed.field("in_flight") == "3")
        #expect(parsed.field("budget") == "10s")
        #expect(parsed.field("missing") == nil)
    }

    @Test("an access line's fields, a quoted target unquoted, and no field read from inside the quotes")
    func accessFields() throws {
        let target = logField("/x status=200 \"q\"\u{1b}")
        let text = line(.info, "access method=GET target=\(target) status=404 duration=1.5ms bytes=19", requestID: "9")
        let parsed = try #require(LogLine(parsing: text))
        #expect(parsed.field("method") == "GET")
        #expect(parsed.field("target") == "/x status=200 \"q\"\u{1b}")
        #expect(parsed.field("status") == "404")
        #expect(parsed.field("duration").flatMap { try? GoDuration(parsing: $0) } == .init(nanoseconds: 1_500_000))
        #expect(parsed.field("bytes") == "19")
    }

    @Test("timestamps round-trip to the microsecond, across the years the format covers",
          arguments: [-62_135_596_800, 0, 951_868_799, 1_795_603_730, 253_402_300_799] as [Int64])
    func timestamps(_ seconds: Int64) throws {
        let stamp = LogTimestamp(seconds: seconds, nanoseconds: 999_999_999)
        let text = String(decoding: formatLogLine(level: .debug, message: "m", at: stamp), as: UTF8.self)
        let parsed = try #require(LogLine(parsing: text))
        #expect(parsed.time == LogTimestamp(seconds: seconds, nanoseconds: 999_999_000))
        #expect(stamp - parsed.time == .nanoseconds(999))
    }

    @Test("what is not greetd's shape is refused", arguments: [
        "",
        "hello world",
        "2026-11-25T10:48:50.123456Z loud message",  // unknown level
        "2026-11-25T10:48:50.123456 info message",  // no Z
        "2026-02-30T10:48:50.123456Z info message",  // no such day
        "2026-11-25T24:00:00.000000Z info message",
        "2026-11-25T10:48:50.12345xZ info message",
        "2026-11-25T10:48:50.123456Zinfo message",
        "<x>2026-11-25T10:48:50.123456Z info message",
    ])
    func refuses(_ text: String) {
        #expect(LogLine(parsing: text) == nil)
    }

    @Test("a line whose message is empty still parses")
    func emptyMessage() throws {
        let parsed = try #require(LogLine(parsing: line(.warning, "", requestID: "1")))
        #expect(parsed.requestID == "1")
        #expect(parsed.message == "")
    }
}

/// A combining mark after a space glues the two into one `Character`; the reader goes by bytes.
@Suite struct LogLineCombiningMarkTests {
    @Test("a message, request id or field value starting with a combining mark reads back (fuzz regression)")
    func combiningMarks() throws {
        let time = LogTimestamp(seconds: 0, nanoseconds: 0)
        let text = String(decoding: formatLogLine(level: .info, message: "\u{0363}msg", requestID: "\u{0301}id",
                                                  fields: [("k", "\u{0363}v")], at: time), as: UTF8.self)
        let parsed = try #require(LogLine(parsing: text))
        #expect(parsed.level == .info)
        #expect(Array(parsed.requestID?.utf8 ?? "".utf8) == Array("\u{0301}id".utf8))
        #expect(Array(parsed.message.utf8) == Array("\u{0363}msg k=\u{0363}v".utf8))
        #expect(parsed.field("k").map { Array($0.utf8) } == Array("\u{0363}v".utf8))
    }
}

/// The readers of a message alone, as a `LogHandler` sees it, and of one quoted field.
@Suite struct LogFieldReaderTests {
    @Test("LogLine.field(_:inMessage:) reads a field of a bare message, quoted or not")
    func fieldOfAMessage() {
        let message = "access method=GET target=\(logField("/a b=1\"c")) status=200 duration=1.2ms bytes=14"
        #expect(LogLine.field("duration", inMessage: message) == "1.2ms")
        #expect(LogLine.field("target", inMessage: message) == "/a b=1\"c")
        #expect(LogLine.field("bytes", inMessage: message) == "14")
        #expect(LogLine.field("b", inMessage: message) == nil, "a field inside a quoted value is not a field")
        #expect(LogLine.field("missing", inMessage: message) == nil)
    }

    @Test("unquoteLogField undoes goQuote and says where the field ends")
    func unquote() throws {
        let value = "x \"y\" \\ \u{1}é"
        let quoted = Array((GoDuration.quote(value) + " rest").utf8)
        let (bytes, end) = try #require(unquoteLogField(quoted, from: 0))
        #expect(bytes == Array(value.utf8))
        #expect(end == quoted.count - " rest".utf8.count)
        #expect(unquoteLogField(Array("\"open".utf8), from: 0) == nil, "the quote never closes")
        #expect(unquoteLogField(Array("\"\\xZ1\"".utf8), from: 0) == nil, "a malformed \\x escape")
    }
}
