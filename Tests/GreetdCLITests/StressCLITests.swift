import Foundation
import GreetdRules
import Synchronization
import TestSupport
import Testing

/// `greet-stress` against a real `greetd`, as CI runs it: a few hundred aborting clients, then the
/// server's `/metrics` must account for every one of them. A few seconds in all.
@Suite("greet-stress against greetd", .serialized)
struct StressCLITests {
    /// greetd on a free port. `--log-level info` because the `Server listening on` line (the port)
    /// is an info line; `--tick 1s` keeps the log short, since no greeting here lives that long
    /// except the aborted ones, which end long before their first tick.
    private static func startGreetd() throws -> (GreetdProcess, UInt16) {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--tick", "1s", "--log-level", "info"])
        return (greetd, try greetd.listeningPort())
    }

    @Test("300 aborting clients (FIN, RST, half-close): all counted as canceled by greetd, exit 0")
    func abortsOnly() throws {
        let (greetd, port) = try Self.startGreetd()
        let run = try StressRun(["--port", "\(port)", "--requests", "300", "--connections", "100",
                                 "--abort-after", "20ms-200ms", "--path", "/?delay=2s", "--complete-fraction", "0",
                                 "--duration", "20s"])
        #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        #expect(run.stdout.range(of: #"\n\s*aborted\s+300\b"#, options: .regularExpression) != nil, "\(run.stdout)")
        #expect(run.stdout.range(of: #"\n\s*completed\s+0\n"#, options: .regularExpression) != nil, "\(run.stdout)")
        #expect(run.stdout.contains("canceled delta == aborted"), "\(run.stdout)")
        #expect(run.stdout.hasSuffix("PASS\n"), "\(run.stdout)")
        // greetd labels each request's log lines with the client's X-Request-Id.
        try greetd.waitForLine(containing: "[request_id=stress-300] ")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("30% of the requests complete: completions are counted and verified too (JSON summary)")
    func someComplete() throws {
        let (greetd, port) = try Self.startGreetd()
        let run = try StressRun(["--port", "\(port)", "--requests", "300", "--connections", "100",
                                 "--complete-fraction", "0.3", "--path", "/?delay=100ms", "--abort-after", "20ms-60ms",
                                 "--duration", "20s", "--json"])
        #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
        #expect(object["completed"] as? Int == 90)
        #expect(object["aborted"] as? Int == 210)
        #expect((object["errors"] as? [String: Int])?.isEmpty == true)
        #expect(object["ok"] as? Bool == true)
        let checks = try #require(object["checks"] as? [[String: Any]])
        let completedCheck = try #require(checks.first { ($0["name"] as? String)?.hasPrefix("completed delta") == true })
        #expect(completedCheck["actual"] as? Int == 90)
        #expect((object["rss_peak"] as? Int ?? 0) > 0)
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("--seed makes the plan repeatable: the same seed aborts the same ways, and the summary names it")
    func seededRunsRepeat() throws {
        let (greetd, port) = try Self.startGreetd()
        func stylesOfRun() throws -> String {
            let run = try StressRun(["--port", "\(port)", "--requests", "120", "--connections", "60", "--seed", "42",
                                     "--abort-after", "20ms-120ms", "--path", "/?delay=2s", "--duration", "20s", "--json"])
            #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
            #expect(run.stdout.contains("\"seed\":\"42\""), "\(run.stdout)")
            let styles = run.stdout.range(of: #""aborted_by_style":\{[^}]*\}"#, options: .regularExpression)
            return try #require(styles.map { String(run.stdout[$0]) }, "\(run.stdout)")
        }
        let first = try stylesOfRun()
        #expect(try stylesOfRun() == first)
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("a bad --abort-style is a usage error: exit 64")
    func usageError() throws {
        let run = try StressRun(["--abort-style", "bogus"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("bogus"), "\(run.stderr)")
    }

    @Test("no server: says /metrics cannot be read and exits 1")
    func noServer() throws {
        // A port that was free a moment ago: greetd picks it, then exits.
        let (greetd, port) = try Self.startGreetd()
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
        let run = try StressRun(["--port", "\(port)", "--requests", "1"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot read http://127.0.0.1:\(port)/metrics"), "\(run.stderr)")
    }

    @Test("connection churn: 50,000 short connections in a row leave no descriptor or memory behind")
    func churn() throws {
        let port = try freeLoopbackPort()
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "\(port)", "--workers", "1", "--log-level", "warning"])
        try waitUntilListening(port)
        let common = ["--port", "\(port)", "--connections", "50", "--complete-fraction", "1", "--path", "/?delay=0s"]
        #expect(try StressRun(common + ["--requests", "1000"]).status == 0)  // warm-up
        let before = try processFigures(port)
        let run = try StressRun(common + ["--requests", "50000", "--json"], timeout: 120)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        // A leaked connection costs kilobytes (evhttp's connection, its buffers, greetd's
        // objects): 50,000 of them, hundreds of MiB. The bound allows 16 MiB of allocator slack.
        // greetd hands freed memory back a second after going idle: wait for that, not a time.
        let rssBound = before.rss + Double(16 << 20)
        var after = try processFigures(port)
        let deadline = Date().addingTimeInterval(15)
        while (after.fds > before.fds || after.rss > rssBound) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            after = try processFigures(port)
        }
        print("StressCLITests: 50,000 connections: open descriptors \(before.fds) -> \(after.fds), resident memory \(Int(before.rss) >> 10) -> \(Int(after.rss) >> 10) KiB")
        #expect(after.fds <= before.fds, "open descriptors \(before.fds) -> \(after.fds)")
        #expect(after.rss <= rssBound, "resident memory \(before.rss) -> \(after.rss) bytes")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }
}

/// Waits until something accepts connections on `port`.
private func waitUntilListening(_ port: UInt16, timeout: TimeInterval = 10) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n"))?.contains("200") == true { return }
        Thread.sleep(forTimeInterval: 0.05)
    }
    throw TestFailure("nothing listens on \(port) after \(timeout)s")
}

/// `process_open_fds` and `process_resident_memory_bytes` from greetd's /metrics.
private func processFigures(_ port: UInt16) throws -> (fds: Double, rss: Double) {
    let samples = PrometheusText.samples(in: try rawExchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n"))
    func value(_ name: String) throws -> Double {
        guard let number = samples.value(of: name) else { throw TestFailure("no \(name) in /metrics") }
        return number
    }
    return (try value(MetricName.openFileDescriptors), try value(MetricName.residentMemory))
}
