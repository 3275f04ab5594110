@testable import GreetdCore
import EventHTTPSystem
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// GreetdCore's log handler: swift-log's values in GreetdRules' line, and sd-daemon priorities
/// when standard error is the journal's stream.
@Suite struct LogHandlerTests {
    /// A pipe; the handler writes to `writeEnd`, the test reads `readEnd`.
    private final class Pipe {
        let readEnd: Int32, writeEnd: Int32
        init() throws {
            (readEnd, writeEnd) = try SystemCalls.makePipe()
        }
        deinit {
            // Ignored: only EBADF could fail, and both ends are ours until now.
            try? SystemCalls.closeDescriptor(readEnd)
            try? SystemCalls.closeDescriptor(writeEnd)
        }
        /// `JOURNAL_STREAM` as systemd would set it for the write end: `<st_dev>:<st_ino>`.
        var journalStream: String {
            get throws {
                var status = stat()
                try SystemCalls.systemCall("fstat") { fstat(writeEnd, &status) }
                return "\(status.st_dev):\(status.st_ino)"
            }
        }
        /// What has been written so far (the lines are already in the pipe: no waiting).
        func lines() throws -> [String] {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let n = try SystemCalls.systemCall("read") { read(readEnd, &buffer, buffer.count) }
            return String(decoding: buffer.prefix(n), as: UTF8.self).split(separator: "\n").map(String.init)
        }
    }

    private func logger(_ handler: FileDescriptorLogHandler) -> Logger {
        var logger = Logger(label: "test") { _ in handler }
        logger.logLevel = .trace
        return logger
    }

    @Test("under systemd (JOURNAL_STREAM names the descriptor) each line starts with its sd-daemon priority")
    func journalPriorities() throws {
        let pipe = try Pipe()
        let handler = FileDescriptorLogHandler(fd: pipe.writeEnd, level: .trace, journalStream: try pipe.journalStream)
        #expect(handler.journalPriorities)
        let log = logger(handler)
        log.debug("d")
        log.info("i", metadata: [requestIDKey: "7"])
        log.notice("n")
        log.warning("w")
        log.error("e")
        log.critical("c")
        let parsed = try pipe.lines().compactMap(LogLine.init(parsing:))
        #expect(parsed.map(\.priority) == [7, 6, 5, 4, 3, 2])
        #expect(parsed.map(\.message) == ["d", "i", "n", "w", "e", "c"])
        #expect(parsed[1].requestID == "7")
    }

    @Test("no priorities without JOURNAL_STREAM, or when it names another file (output redirected)",
          arguments: [nil, "1:2", "garbage", ""] as [String?])
    func noPriorities(_ journalStream: String?) throws {
        let pipe = try Pipe()
        let handler = FileDescriptorLogHandler(fd: pipe.writeEnd, level: .info, journalStream: journalStream)
        #expect(!handler.journalPriorities)
        logger(handler).warning("w")
        let lines = try pipe.lines()
        #expect(lines.count == 1)
        #expect(lines.first.flatMap(LogLine.init(parsing:))?.priority == nil)
        #expect(lines.first?.first != "<")
    }

    @Test("swift-log's values: request id after the level, handler and event metadata sorted after the message")
    func lineLayout() throws {
        let time = LogTimestamp(seconds: 1_795_603_730, nanoseconds: 123_456_000)
        let line = formatLogLine(level: .notice, message: "Context Error: context canceled",
                                 metadata: [requestIDKey: "17", "zeta": "1", "alpha": "x y"], at: time)
        #expect(String(decoding: line, as: UTF8.self)
            == "2026-11-25T10:48:50.123456Z notice [request_id=17] Context Error: context canceled alpha=x y zeta=1")

        let pipe = try Pipe()
        var handler = FileDescriptorLogHandler(fd: pipe.writeEnd, level: .info, journalStream: nil)
        handler[metadataKey: "worker"] = "2"
        logger(handler).info("Server listening", metadata: ["b": "1", "a": .array(["x", "y"])])
        let parsed = try #require(try pipe.lines().first.flatMap(LogLine.init(parsing:)))
        #expect(parsed.level == .info)
        #expect(parsed.message == #"Server listening a=["x", "y"] b=1 worker=2"#)
    }

    @Test("a request's line written directly is the line swift-log's path writes (text, JSON, journal)",
          arguments: [(LogOutputFormat.text, false), (.json, false), (.text, true)])
    func directRequestLine(format: LogOutputFormat, journal: Bool) throws {
        let pipe = try Pipe()
        let handler = FileDescriptorLogHandler(fd: pipe.writeEnd, level: .info, journalStream: journal ? try pipe.journalStream : nil,
                                               format: format)
        let metadata: Logger.Metadata = ["zeta": "1", "alpha": "x\u{1b}y", "reason": .array(["a"])]
        logger(handler).log(.notice, request: "r-1\n", "Context Error: context canceled", metadata: metadata)
        handler.log(level: .notice, message: "Context Error: context canceled", requestID: "r-1\n", metadata: metadata)
        handler.log(level: .info, message: "Handled greeting request", requestID: "r-2", metadata: [:])
        logger(handler).log(.info, request: "r-2", "Handled greeting request")
        let lines = try pipe.lines()
        try #require(lines.count == 4)
        // Alike but for the time (the text format's first field, the JSON's "time" member).
        func timeless(_ line: String) -> String {
            guard !journal else { return line }
            if format == .json { return line.replacing(/"time":"[^"]*"/, with: "") }
            return String(line.drop { $0 != " " })
        }
        #expect(timeless(lines[0]) == timeless(lines[1]))
        #expect(timeless(lines[2]) == timeless(lines[3]))
        let escapes = format == .json ? ["\\u001b", "\\u000a"] : ["\\x1b", "\\x0a"]
        #expect(escapes.allSatisfy(lines[0].contains), "control bytes escaped: \(lines[0])")
    }

    @Test("levels map one to one onto GreetdRules' LogLevel")
    func levels() {
        for level in Logger.Level.allCases {
            #expect(LogLevel(level).rawValue == level.rawValue)
        }
    }
}
