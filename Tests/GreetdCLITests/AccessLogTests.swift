import Foundation
import GreetdRules
import TestSupport
import Testing

/// `--access-log`, `--log-format`, journald mode, `SIGHUP` and the access line's fields, on the
/// built binary.
@Suite(.serialized) struct AccessLogTests {
    static let wait: TimeInterval = 10

    private static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("greetd-access-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Waits until the file at `url` has a line containing `fragment`; returns it.
    @discardableResult
    private static func waitForFileLine(_ url: URL, containing fragment: String) throws -> String {
        let deadline = Date().addingTimeInterval(wait)
        while Date() < deadline {
            let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.contains(fragment) }) { return String(line) }
            Thread.sleep(forTimeInterval: 0.01)
        }
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? "<none>"
        throw TestFailure("no line containing \"\(fragment)\" in \(url.path) within \(wait)s; got:\n\(text)")
    }

    @Test("--access-log PATH: every request gets a line in the file (0640) at --log-level notice, none on stderr")
    func accessLogFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("access.log")
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--log-level", "NOTICE", "--access-log", file.path])
        let port = try greetd.listeningPort()

        let ok = try HTTPReply(parsing: rawExchange(port: port, "GET /?delay=0s HTTP/1.1\r\nHost: x\r\nUser-Agent: probe/1 \"q\"\r\nConnection: close\r\n\r\n"))
        #expect(ok.status == 200)
        let line = try Self.waitForFileLine(file, containing: "status=200")
        let parsed = try #require(LogLine(parsing: line), "\(line)")
        #expect(parsed.level == .info && parsed.hasTimestamp)
        #expect(parsed.requestID == ok.header("X-Request-Id"))
        #expect(parsed.field("method") == "GET" && parsed.field("target") == "/?delay=0s" && parsed.field("bytes") == "14")
        #expect(parsed.field("remote")?.hasPrefix("127.0.0.1:") == true, "\(line)")
        #expect(parsed.field("proto") == "HTTP/1.1")
        #expect(parsed.field("user_agent") == "probe/1 \"q\"", "\(line)")

        let missing = try HTTPReply(parsing: rawExchange(port: port, "GET /nope HTTP/1.0\r\n\r\n"))
        #expect(missing.status == 404)
        let notFound = try Self.waitForFileLine(file, containing: "status=404")
        #expect(LogLine(parsing: notFound)?.field("proto") == "HTTP/1.0", "\(notFound)")

        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
        #expect(mode == 0o640)
        #expect(!greetd.stderrText.contains("access method="), "\(greetd.stderrText)")
        #expect(!greetd.stderrText.contains("Handling greeting request"), "--log-level notice still applies to other lines")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
    }

    @Test("SIGHUP reopens the access log after a rename (logrotate), logs a notice, and greetd goes on")
    func sighupReopens() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("access.log")
        let rotated = directory.appendingPathComponent("access.log.1")
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--access-log", file.path])
        let port = try greetd.listeningPort()
        _ = try rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n")
        try Self.waitForFileLine(file, containing: "target=/healthz")

        try FileManager.default.moveItem(at: file, to: rotated)
        greetd.signal(SIGHUP)
        let notice = try greetd.waitForLine(containing: "SIGHUP: reopened the access log")
        #expect(LogLine(parsing: notice.text)?.level == .notice)

        _ = try rawExchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n")
        try Self.waitForFileLine(file, containing: "target=/metrics")
        let old = try String(contentsOf: rotated, encoding: .utf8)
        #expect(old.contains("target=/healthz") && !old.contains("target=/metrics"), "\(old)")
        #expect(greetd.process.isRunning, "SIGHUP must not stop greetd")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
    }

    @Test("SIGHUP with the access log on stderr: a notice line, and greetd keeps serving")
    func sighupOnStderr() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0"])
        let port = try greetd.listeningPort()
        greetd.signal(SIGHUP)
        try greetd.waitForLine(containing: "SIGHUP")
        let reply = try HTTPReply(parsing: rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n"))
        #expect(reply.status == 200)
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
    }

    @Test("--access-log off writes no access line anywhere")
    func off() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--access-log", "off"])
        let port = try greetd.listeningPort()
        _ = try rawExchange(port: port, "GET /?delay=0s HTTP/1.0\r\n\r\n")
        try greetd.waitForLine(containing: "Handled greeting request")
        _ = try rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
        #expect(!greetd.stderrText.contains("access "), "\(greetd.stderrText)")
    }

    @Test("--log-format json: every line is one object; the access line's fields are typed")
    func json() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--log-format", "json", "--delay", "40ms", "--tick", "20ms"])
        let port = try greetd.listeningPort()
        let reply = try HTTPReply(parsing: rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: j/2\r\nConnection: close\r\n\r\n"))
        #expect(reply.status == 200)
        try greetd.waitForLine(containing: #""msg":"access""#)
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)

        var objects: [[String: Any]] = []
        for line in greetd.stderrLines {
            let object = try JSONSerialization.jsonObject(with: Data(line.text.utf8)) as? [String: Any]
            let parsed = try #require(object, "not a JSON object: \(line.text)")
            #expect(parsed["time"] is String && parsed["level"] is String && parsed["msg"] is String, "\(line.text)")
            objects.append(parsed)
        }
        let id = reply.header("X-Request-Id")
        #expect(objects.contains { $0["msg"] as? String == "Greetings are hard. Thinking..." && $0["request_id"] as? String == id })
        let access = try #require(objects.first { $0["msg"] as? String == "access" })
        #expect(access["request_id"] as? String == id)
        #expect(access["method"] as? String == "GET" && access["target"] as? String == "/")
        #expect((access["status"] as? NSNumber)?.intValue == 200 && (access["bytes"] as? NSNumber)?.intValue == 14)
        #expect(((access["duration_seconds"] as? NSNumber)?.doubleValue ?? -1) > 0.03)
        #expect((access["remote"] as? String)?.hasPrefix("127.0.0.1:") == true)
        #expect(access["proto"] as? String == "HTTP/1.1" && access["user_agent"] as? String == "j/2")
        let time = try #require(access["time"] as? String)
        #expect(ISO8601DateFormatter.withFractionalSeconds.date(from: time) != nil, "\(time)")
    }

    @Test("under journald (JOURNAL_STREAM naming stderr) text lines carry a priority and no timestamp")
    func journald() throws {
        // The variable must name the pipe the child's stderr is: a shell finds it and execs greetd.
        let script = #"JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" "$@""#
        let greetd = try GreetdProcess(["-c", script, GreetdProcess.binary.path, "--host", "127.0.0.1", "--port", "0"],
                                       executable: URL(fileURLWithPath: "/bin/sh"))
        let port = try greetd.listeningPort()
        _ = try rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n")
        let access = try greetd.waitForLine(containing: "access method=GET")
        #expect(access.text.hasPrefix("<6>info ["), "\(access.text)")
        let parsed = try #require(LogLine(parsing: access.text))
        #expect(parsed.priority == 6 && !parsed.hasTimestamp)
        let ready = try greetd.waitForLine(containing: "Ready:")
        #expect(ready.text.hasPrefix("<5>notice Ready:"), "\(ready.text)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
    }

    @Test("a 60 KB target is cut in the access line, with a marker giving its size")
    func longTargetCut() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0"])
        let port = try greetd.listeningPort()
        let target = "/" + String(repeating: "a", count: 61_439)
        let reply = try HTTPReply(parsing: rawExchange(port: port, "GET \(target) HTTP/1.0\r\n\r\n"))
        #expect(reply.status == 404)
        #expect(reply.bodyBytes.count < 4096)
        let line = try greetd.waitForLine(containing: "access method=GET")
        #expect(line.text.utf8.count < 4096, "\(line.text.utf8.count) bytes")
        let logged = try #require(LogLine(parsing: line.text)?.field("target"))
        #expect(logged.hasPrefix("/aaaa") && logged.hasSuffix("…(cut, 61440 bytes)"), "\(logged.suffix(40))")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
    }

    @Test("an aborted stream's access line shows the 200 and the bytes it sent; Context Error stays")
    func streamAbort() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--tick", "20ms"])
        let port = try greetd.listeningPort()
        let client = try LoopbackConnection(port: port)
        try client.send("GET /?delay=10s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        try greetd.waitForLines(containing: "Greetings are hard. Thinking...", count: 2)
        client.abort(.fin)
        try greetd.waitForLine(containing: "Context Error: context canceled")
        let line = try greetd.waitForLine(containing: "access method=GET")
        let parsed = try #require(LogLine(parsing: line.text))
        #expect(parsed.field("status") == "200", "\(line.text)")
        #expect(Int(parsed.field("bytes") ?? "") ?? 0 > 0, "\(line.text)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0)
    }

    @Test("--log-level accepts warn and any case", arguments: ["warn", "WARN", "Info", "NOTICE"])
    func logLevelSpellings(level: String) throws {
        // At warn the listening line (notice) is hidden: use a known port and ask it.
        let port = try freeLoopbackPort()
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "\(port)", "--log-level", level])
        var answered = false
        for _ in 0..<200 where !answered {
            answered = (try? rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n"))?.contains("200 OK") == true
            if !answered { usleep(20_000) }
        }
        #expect(answered, "\(greetd.stderrText)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
    }

    @Test("generated request ids differ between two runs")
    func requestIDsAcrossRestarts() throws {
        var ids: [String] = []
        for _ in 0..<2 {
            let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0"])
            let port = try greetd.listeningPort()
            let reply = try HTTPReply(parsing: rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n"))
            ids.append(try #require(reply.header("X-Request-Id")))
            greetd.signal(SIGTERM)
            _ = try greetd.waitForExit(timeout: Self.wait)
        }
        #expect(ids[0] != ids[1] && ids.allSatisfy { $0.hasSuffix("-1") && $0.count > 2 }, "\(ids)")
    }
}

extension ISO8601DateFormatter {
    /// RFC 3339 with fractional seconds.
    static var withFractionalSeconds: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
