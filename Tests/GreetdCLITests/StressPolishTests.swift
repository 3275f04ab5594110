import Foundation
import TestSupport
import Testing

/// What a new user of `greet-stress` trips over, fixed: negative values reach validation, counts
/// read as English, `--json` carries the plan and its errors, and a server that is not running is
/// called unreachable (no `--no-verify` hint, which would not help).
@Suite("greet-stress: flags, wording, JSON")
struct StressPolishTests {
    @Test("a negative value reaches validation and gets its message, not 'Missing value' (exit 64)", arguments: [
        (["--rate", "-1"], "--rate must be 0 or more"),
        (["--port", "-1"], "--port must be between 1 and 65535"),
        (["--connections", "-5"], "--connections must be at least 1"),
        (["--requests", "-1"], "--requests must be at least 1"),
        (["--complete-fraction", "-0.5"], "--complete-fraction must be between 0 and 1"),
        (["--duration", "-1s"], "--duration must be positive"),
        (["--settle", "-1s"], "--settle must not be negative"),
        (["--abort-after", "-5ms"], #"duration "-5ms" must not be negative"#),
        (["--abort-after", "50ms--5ms"], #"duration "-5ms" must not be negative"#),
    ])
    func negativeValues(_ arguments: [String], _ message: String) throws {
        let run = try StressRun(arguments)
        #expect(run.status == 64, "\(run.stderr)")
        #expect(run.stderr.contains(message), "\(run.stderr)")
        #expect(!run.stderr.contains("Missing value"), "\(run.stderr)")
    }

    @Test("one request on one connection is '1 request', '1 connection'; a refused connect says the server is not reachable")
    func singular() throws {
        // Bound but not listening: a connect is refused, and nobody else can take the port meanwhile.
        let port = try LoopbackListener(backlog: nil)
        let run = try StressRun(["--port", "\(port.address.port)", "--requests", "1", "--connections", "1", "--no-verify"])
        #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")  // the request ends in ECONNREFUSED
        #expect(run.stdout.hasPrefix("greet-stress: 1 request to 127.0.0.1:\(port.address.port)/"), "\(run.stdout)")
        #expect(run.stdout.contains(", 1 connection, "), "\(run.stdout)")
        #expect(!run.stdout.contains("1 requests") && !run.stdout.contains("1 connections"), "\(run.stdout)")
        #expect(run.stdout.contains("the server is not reachable at 127.0.0.1:\(port.address.port)"), "\(run.stdout)")
    }

    @Test("no server: /metrics cannot be read because the server is not reachable; no --no-verify hint")
    func unreachable() throws {
        // Bound but not listening: a connect is refused, and nobody else can take the port meanwhile.
        let port = try LoopbackListener(backlog: nil)
        let run = try StressRun(["--port", "\(port.address.port)", "--requests", "1"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot read http://127.0.0.1:\(port.address.port)/metrics"), "\(run.stderr)")
        #expect(run.stderr.contains("ECONNREFUSED"), "\(run.stderr)")
        #expect(run.stderr.contains("the server is not reachable"), "\(run.stderr)")
        #expect(!run.stderr.contains("--no-verify"), "\(run.stderr)")
    }

    @Test("a server without greetd's metrics (404): the --no-verify hint is still given")
    func notGreetdMetrics() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--log-level", "info"])
        let port = try greetd.listeningPort()
        let run = try StressRun(["--port", "\(port)", "--requests", "1", "--metrics-path", "/not-metrics"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("the server answered 404"), "\(run.stderr)")
        #expect(run.stderr.contains("use --no-verify"), "\(run.stderr)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("--json: the summary carries the plan, with every flag as the run used it")
    func jsonPlan() throws {
        // Bound but not listening: a connect is refused, and nobody else can take the port meanwhile.
        let port = try LoopbackListener(backlog: nil)
        let run = try StressRun(["--port", "\(port.address.port)", "--requests", "1", "--connections", "1", "--no-verify",
                                      "--abort-after", "20ms-1.5s", "--seed", "42", "--settle", "0s", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
        #expect(object["ok"] as? Bool == false)
        let plan = try #require(object["plan"] as? [String: Any], "\(run.stdout)")
        #expect(plan["port"] as? Int == Int(port.address.port))
        #expect(plan["requests"] as? Int == 1)
        #expect(plan["connections"] as? Int == 1)
        #expect(plan["abort_after"] as? String == "20ms-1.5s")
        #expect(plan["abort_style"] as? String == "mix")
        #expect(plan["duration"] as? String == "1m0s")
        #expect(plan["settle"] as? String == "0s")
        #expect(plan["verify"] as? Bool == false)
        #expect(plan["seed"] as? String == "42")
        #expect(plan["path"] as? String == "/?delay=2s")
    }

    @Test("--json: a usage error is one JSON object on standard output too (exit 64)")
    func jsonUsageError() throws {
        let run = try StressRun(["--rate", "-1", "--json"])
        #expect(run.status == 64)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
        #expect(object["ok"] as? Bool == false)
        #expect(object["error"] as? String == "--rate must be 0 or more")
        #expect(object["exit_code"] as? Int == 64)
    }

    @Test("--json: a run that cannot start is one JSON object with the error and the plan (exit 1)")
    func jsonRunError() throws {
        // Bound but not listening: a connect is refused, and nobody else can take the port meanwhile.
        let port = try LoopbackListener(backlog: nil)
        let run = try StressRun(["--port", "\(port.address.port)", "--requests", "3", "--json"])
        #expect(run.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
        #expect(object["ok"] as? Bool == false)
        #expect((object["error"] as? String)?.contains("the server is not reachable") == true, "\(run.stdout)")
        #expect((object["plan"] as? [String: Any])?["requests"] as? Int == 3)
        #expect(object["exit_code"] as? Int == 1)
    }
}
