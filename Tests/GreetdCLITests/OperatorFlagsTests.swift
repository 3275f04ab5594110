import Foundation
import GreetdRules
import TestSupport
import Testing

/// What an operator coming from nginx, Caddy or Go net/http tries first, on the built binary:
/// queries with names greetd does not read, `Vary: Accept`, `--host` (repeated, `::`, brackets),
/// the default `--workers`, the limits' upper bounds, and greet-stress's `--version` and seed.
@Suite("greetd as operators expect it")
struct OperatorFlagsTests {
    /// One request on a fresh connection, `Connection: close`, answer parsed.
    private func get(_ port: UInt16, _ target: String, host: String = "127.0.0.1", method: String = "GET",
                     headers: String = "") throws -> HTTPReply {
        let raw = try rawExchange(port: port, host: host,
                                  "\(method) \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\(headers)\r\n")
        return try HTTPReply(parsing: raw, requestMethod: method)
    }

    @Test("queries: unread keys and empty arguments are 200 (Go); ?delay is judged as delay=")
    func queries() throws {
        let greetd = try GreetdProcess(["--port", "0", "--workers", "1", "--delay", "0s"])
        let port = try greetd.listeningPort()
        for target in ["/?delay=0s&cachebust", "/?&", "/?cachebust", "/?&&delay=0s&", "/?=x&delay=0s"] {
            let reply = try get(port, target)
            #expect(reply.status == 200, "\(target): \(reply)")
            #expect(reply.body == "Hello Gopher!\n", "\(target)")
        }
        let bare = try get(port, "/?delay")
        let empty = try get(port, "/?delay=")
        #expect(bare.status == 400 && empty.status == 400)
        #expect(bare.body == empty.body, "?delay: \(bare.body) vs ?delay=: \(empty.body)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("Vary: Accept on every greeting answer: plain, async, streamed, HEAD, 503")
    func varyAccept() throws {
        let greetd = try GreetdProcess(["--port", "0", "--workers", "1", "--delay", "0s"])
        let port = try greetd.listeningPort()
        let cases: [(String, String, String, Int)] = [
            ("GET", "/", "", 200),
            ("HEAD", "/", "", 200),
            ("GET", "/?async=1", "", 200),
            ("GET", "/", "Accept: text/event-stream\r\n", 200),
            ("HEAD", "/", "Accept: text/event-stream\r\n", 200),
            ("GET", "/?stream=1&async=1", "", 200),
            ("GET", "/?timeout=0", "", 503),
            ("GET", "/?timeout=0&async=1", "", 503),
            ("GET", "/?timeout=0", "Accept: text/event-stream\r\n", 200),  // the stream's error event
        ]
        for (method, target, headers, status) in cases {
            let reply = try get(port, target, method: method, headers: headers)
            #expect(reply.status == status, "\(method) \(target) \(headers): \(reply)")
            #expect(reply.header("Vary") == "Accept", "\(method) \(target) \(headers): \(reply)")
        }
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("--host :: is dual stack: 127.0.0.1 and ::1 both answer")
    func dualStack() throws {
        let greetd = try GreetdProcess(["--host", "::", "--port", "0", "--workers", "2", "--delay", "0s"])
        let port = try greetd.listeningPort()
        #expect(try get(port, "/healthz", host: "127.0.0.1").status == 200)
        #expect(try get(port, "/healthz", host: "::1").status == 200)
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("--host twice listens on both; [::1] is accepted")
    func severalHosts() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--host", "[::1]", "--port", "0", "--workers", "2", "--delay", "0s"])
        let port = try greetd.listeningPort()
        try greetd.waitForLine(containing: "Server listening on http://[::1]:\(port)")
        try greetd.waitForLine(containing: "Server listening on http://127.0.0.1:\(port)")
        #expect(try get(port, "/healthz", host: "127.0.0.1").status == 200)
        #expect(try get(port, "/healthz", host: "::1").status == 200)
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("the default --workers is the affinity mask's CPUs, and the start line says so")
    func workersFromAffinity() throws {
        let taskset = URL(fileURLWithPath: "/usr/bin/taskset")
        try #require(FileManager.default.isExecutableFile(atPath: taskset.path), "taskset is not installed")
        let greetd = try GreetdProcess(["-c", "0", GreetdProcess.binary.path, "--port", "0"], executable: taskset)
        let line = try greetd.waitForLine(containing: "Event backend:")
        // One CPU by affinity; a cgroup quota could only make it... one.
        #expect(line.text.contains("workers=1 "), "\(line.text)")
        #expect(line.text.contains("workers_from=affinity") || line.text.contains("workers_from=cgroup"), "\(line.text)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)

        let flagged = try GreetdProcess(["--port", "0", "--workers", "3"])
        let start = try flagged.waitForLine(containing: "Event backend:")
        #expect(start.text.contains("workers=3 ") && start.text.contains("workers_from=flag"), "\(start.text)")
        flagged.signal(SIGTERM)
        #expect(try flagged.waitForExit() == 0)
    }

    @Test("limits above their bound are refused (exit 64) and the message names the bound", arguments: [
        (["--max-header-bytes", "1000000000000"], "max-header-bytes must be at most 16777216 (16 MiB)"),
        (["--max-header-bytes", "16777217"], "max-header-bytes must be at most 16777216 (16 MiB)"),
        (["--max-body-bytes", "1073741825"], "max-body-bytes must be at most 1073741824 (1 GiB)"),
        (["--pipeline-limit", "16777217"], "pipeline-limit must be at most 16777216 (16 MiB)"),
        (["--max-connections", "1000001"], "max-connections must be at most 1000000 (1,000,000)"),
        (["--workers", "257"], "workers must be between 1 and 256, got 257"),
    ])
    func upperBounds(arguments: [String], message: String) throws {
        let greetd = try GreetdProcess(arguments + ["--port", "0"])
        #expect(try greetd.waitForExit() == 64)
        #expect(greetd.stderrText.contains(message), "stderr: \(greetd.stderrText)")
        #expect(!greetd.stderrText.contains("Server listening"))
    }

    @Test("the bounds themselves are accepted")
    func atTheBounds() throws {
        let greetd = try GreetdProcess(["--port", "0", "--workers", "1", "--max-header-bytes", "16777216",
                                        "--max-body-bytes", "1073741824", "--pipeline-limit", "16777216"])
        _ = try greetd.listeningPort()
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("--max-connections above the descriptor limit: a warning at start names both figures")
    func descriptorWarning() throws {
        let prlimit = URL(fileURLWithPath: "/usr/bin/prlimit")
        try #require(FileManager.default.isExecutableFile(atPath: prlimit.path), "prlimit is not installed")
        let greetd = try GreetdProcess(["--nofile=512:512", GreetdProcess.binary.path, "--port", "0", "--workers", "1",
                                        "--max-connections", "5000"], executable: prlimit)
        let line = try greetd.waitForLine(containing: "exceeds the open-file limit")
        #expect(line.text.contains("5000") && line.text.contains("512"), "\(line.text)")
        _ = try greetd.listeningPort()
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)

        let quiet = try GreetdProcess(["--nofile=512:512", GreetdProcess.binary.path, "--port", "0", "--workers", "1",
                                       "--max-connections", "100"], executable: prlimit)
        _ = try quiet.listeningPort()
        #expect(!quiet.stderrText.contains("exceeds the open-file limit"))
        quiet.signal(SIGTERM)
        #expect(try quiet.waitForExit() == 0)
    }

    @Test("greet-stress --version prints greetd's version string")
    func stressVersion() throws {
        let run = try StressRun(["--version"])
        #expect(run.status == 0)
        #expect(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == greetdVersion)
    }

    @Test("greet-stress --json writes its seed as a string, above 2^53 included")
    func stressSeed() throws {
        let port = try LoopbackListener(backlog: nil)  // bound, not listening: refused at once
        let seed = "18446744073709551557"
        let run = try StressRun(["--port", "\(port.address.port)", "--requests", "1", "--connections", "1", "--no-verify",
                                 "--seed", seed, "--settle", "0s", "--json"])
        #expect(run.stdout.contains("\"seed\":\"\(seed)\""), "\(run.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["seed"] as? String == seed)
        #expect((object["plan"] as? [String: Any])?["seed"] as? String == seed)
    }
}
