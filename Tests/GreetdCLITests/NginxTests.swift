import Foundation
import TestSupport
import Testing

/// greetd as deploy/nginx.conf runs it: two instances behind nginx on loopback.
///
/// Each test starts two `greetd` and its own `nginx` (own configuration, pid file, logs and temp
/// directories in a fresh temporary directory, on a free loopback port), and stops all three on
/// every path. nginx is found on the machine, or installed once with apt-get; if that fails too,
/// the suite is skipped and the reason printed.
@Suite("greetd behind nginx", .serialized,
       .enabled(if: NginxInstallation.available,
                "nginx is not installed and could not be installed: the reason is printed on standard output"))
struct NginxTests {
    /// The bound on any single wait (a log line, a reply, an exit).
    static let wait: TimeInterval = 3

    @Test("a client abort at nginx: nginx logs 499 and closes the upstream connection, greetd cancels at once")
    func clientAbort() throws {
        let fixture = try NginxFixture()
        defer { fixture.stop() }

        let client = try nginxClient(port: fixture.port)
        try client.send("GET /?delay=10s HTTP/1.1\r\nHost: greetd.test\r\n\r\n")
        let (instance, handling) = try fixture.waitForGreetdLine(containing: "Handling greeting request")
        // nginx's $request_id, which greetd took as its label for the request.
        let id = try #require(requestLabel(in: handling.text), "no request id in: \(handling.text)")
        #expect(id.utf8.count == 32 && id.allSatisfy(\.isHexDigit), "greetd should use nginx's $request_id, got \(id)")
        try instance.waitForLine(containing: "[request_id=\(id)] Greetings are hard. Thinking...", timeout: Self.wait)

        // Ctrl+C on curl: the client closes its connection to nginx mid-greeting.
        let abortedAt = Date()
        client.close()
        let canceled = try instance.waitForLine(containing: "[request_id=\(id)] Context Error: context canceled",
                                                timeout: Self.wait)
        let latency = canceled.arrival.timeIntervalSince(abortedAt)
        print("NginxTests: client abort at nginx -> greetd's context error: \(String(format: "%.2f", latency * 1000)) ms")
        #expect(latency < 0.5, "the context error came \(latency)s after the client closed its connection to nginx")
        #expect(!canceled.text.contains("cause:"), "a client abort has no cause: \(canceled.text)")

        // Both access logs call it 499, under the same id.
        let greetdAccess = try instance.waitForLine(containing: "[request_id=\(id)] access method=GET", timeout: Self.wait)
        #expect(greetdAccess.text.contains("status=499"), "\(greetdAccess.text)")
        let nginxAccess = try fixture.nginx.waitForAccessLine(containing: "request_id=\(id) ")
        print("NginxTests: nginx access log: \(nginxAccess)")
        #expect(nginxAccess.hasPrefix("status=499 "), "\(nginxAccess)")
        #expect(fixture.nginx.errorLog.contains("client prematurely closed connection"), "\(fixture.nginx.errorLog)")

        // The thinking stopped: a greeting of three ticks, straight to the same instance, runs
        // after the cancel; had the aborted one kept ticking, its lines would come with those
        // ticks. greetd's own timers set the window, not the test's clock.
        let witness = try HTTPReply(parsing: rawExchange(port: try instance.listeningPort(), "GET /?delay=150ms HTTP/1.0\r\n\r\n"))
        let witnessID = try #require(witness.header("X-Request-Id"), "\(witness)")
        try instance.waitForLine(containing: "[request_id=\(witnessID)] Handled greeting request", timeout: Self.wait)
        // And the other instance never saw the request.
        let after = instance.stderrLines.drop { $0.text != canceled.text }
        #expect(!after.contains { $0.text.contains("[request_id=\(id)] Greetings are hard") }, "tick after the context error")
        let other = fixture.greetds.first { $0 !== instance }
        #expect(other.map { !$0.stderrText.contains(id) } ?? false, "the request reached both instances")
    }

    @Test("SIGTERM to one instance while requests flow: nginx retries on the other, every request gets 200, the drained one exits 0")
    func drainOneInstance() throws {
        let fixture = try NginxFixture()
        defer { fixture.stop() }

        let requests = 40
        let signalAt = 6
        var drained: GreetdProcess?
        var inFlightAtSignal = ""
        for index in 1...requests {
            let before = fixture.greetds.map { $0.lines(containing: "Handling greeting request").count }
            let client = try nginxClient(port: fixture.port)
            try client.send("GET /?delay=50ms HTTP/1.1\r\nHost: greetd.test\r\nConnection: close\r\n\r\n")
            if index == signalAt {
                // SIGTERM to the instance thinking about this very request: it must still finish it.
                let busy = try fixture.waitForGreetd(where: { slot, greetd in
                    greetd.lines(containing: "Handling greeting request").count > before[slot]
                })
                busy.signal(SIGTERM)
                drained = busy
                let slot = try #require(fixture.greetds.firstIndex { $0 === busy })
                let handling = busy.lines(containing: "Handling greeting request")[before[slot]]
                inFlightAtSignal = try #require(requestLabel(in: handling.text), "\(handling.text)")
            }
            let reply = try client.readResponse()
            #expect(reply.status == 200, "request \(index): \(reply.raw)")
            #expect(reply.body == "Hello Gopher!\n", "request \(index): \(reply.raw)")
        }

        let stopped = try #require(drained)
        #expect(try stopped.waitForExit(timeout: Self.wait) == 0, "\(stopped.stderrText)")
        #expect(stopped.stderrText.contains("Draining: stopped accepting connections"), "\(stopped.stderrText)")
        #expect(stopped.stderrText.contains("Stopped"), "\(stopped.stderrText)")
        // The greeting in flight at SIGTERM finished, with 200, on the drained instance.
        #expect(stopped.stderrText.contains("[request_id=\(inFlightAtSignal)] access method=GET target=/?delay=50ms status=200"),
                "request \(signalAt) (\(inFlightAtSignal)):\n\(stopped.stderrText)")
        let finishedThere = stopped.lines(containing: "access method=GET target=/?delay=50ms status=200").count

        // The survivor served the rest.
        let survivor = try #require(fixture.greetds.first { $0 !== stopped })
        // An access line is logged as its reply is handed over, so it may reach stderr a moment
        // after the client has read the reply: wait for the rest of them, not just what is there.
        let served = (try? survivor.waitForLines(containing: "access method=GET target=/?delay=50ms status=200",
                                                 count: requests - finishedThere, timeout: Self.wait))?.count
            ?? survivor.lines(containing: "access method=GET target=/?delay=50ms status=200").count
        #expect(served + finishedThere == requests, "drained \(finishedThere) + survivor \(served) != \(requests)")

        // nginx answered all of them with 200, retrying on the survivor where it had to.
        let access = try fixture.nginx.waitForAccessLines(containing: "uri=\"/?delay=50ms\"", count: requests)
        #expect(access.allSatisfy { $0.hasPrefix("status=200 ") }, "\(access.joined(separator: "\n"))")
        let retried = access.filter { $0.contains("upstream=\"127.0.0.1:") && $0.contains(", 127.0.0.1:") }
        print("NginxTests: \(requests) requests, SIGTERM before request \(signalAt); drained instance answered \(finishedThere), survivor \(served); nginx retried \(retried.count):")
        for line in retried { print("  \(line)") }

        // With one instance gone, the pool is still healthy.
        let health = try nginxExchange(port: fixture.port, "GET /healthz HTTP/1.1\r\nHost: greetd.test\r\nConnection: close\r\n\r\n")
        #expect(health.status == 200, "\(health.raw)")
    }

    @Test("a greeting cut short by the end of a drain (503) is retried on the other instance: the client still gets 200")
    func drainBudgetSpentIsRetried() throws {
        let fixture = try NginxFixture()
        defer { fixture.stop() }

        // Longer than the drained instance's --shutdown-timeout (2s).
        let client = try nginxClient(port: fixture.port, timeout: 10)
        let sent = Date()
        try client.send("GET /?delay=2200ms HTTP/1.1\r\nHost: greetd.test\r\nConnection: close\r\n\r\n")
        let (first, handling) = try fixture.waitForGreetdLine(containing: "Handling greeting request")
        let id = try #require(requestLabel(in: handling.text), "no request id in: \(handling.text)")
        first.signal(SIGTERM)

        let reply = try client.readResponse()
        let elapsed = Date().timeIntervalSince(sent)
        #expect(reply.status == 200, "\(reply.raw)")
        #expect(reply.body == "Hello Gopher!\n", "\(reply.raw)")
        #expect(reply.header("X-Request-Id") == id, "\(reply.raw)")
        // 2s of drain on the first instance, then the whole greeting again on the second.
        #expect(elapsed > 4, "answered after \(elapsed)s")

        try first.waitForLine(containing: "[request_id=\(id)] Context Error: context canceled (cause: server shutting down)",
                              timeout: Self.wait)
        let firstAccess = try first.waitForLine(containing: "[request_id=\(id)] access method=GET", timeout: Self.wait)
        #expect(firstAccess.text.contains("status=503"), "\(firstAccess.text)")
        let second = try #require(fixture.greetds.first { $0 !== first })
        try second.waitForLine(containing: "[request_id=\(id)] access method=GET target=/?delay=2200ms status=200", timeout: Self.wait)
        let nginxAccess = try fixture.nginx.waitForAccessLine(containing: "request_id=\(id) ")
        print("NginxTests: greeting cut short by the drain, retried after \(String(format: "%.2f", elapsed))s: \(nginxAccess)")
        #expect(nginxAccess.hasPrefix("status=200 "), "\(nginxAccess)")
        #expect(nginxAccess.contains("upstream_status=\"503, 200\""), "\(nginxAccess)")
        #expect(try first.waitForExit(timeout: Self.wait) == 0, "\(first.stderrText)")
    }

    @Test("GET /healthz through nginx: 200 ok, with nginx's request id passed to greetd")
    func healthz() throws {
        let fixture = try NginxFixture()
        defer { fixture.stop() }

        let reply = try nginxExchange(port: fixture.port, "GET /healthz HTTP/1.1\r\nHost: greetd.test\r\nConnection: close\r\n\r\n")
        #expect(reply.status == 200, "\(reply.raw)")
        #expect(reply.body == "ok\n", "\(reply.raw)")
        let id = try #require(reply.header("X-Request-Id"), "\(reply.raw)")
        #expect(id.utf8.count == 32 && id.allSatisfy(\.isHexDigit), "\(reply.raw)")
        let (_, line) = try fixture.waitForGreetdLine(containing: "[request_id=\(id)] access method=GET target=/healthz status=200")
        #expect(line.text.contains("bytes=3"), "\(line.text)")
        // /healthz is not in nginx's access log (access_log off), as in deploy/nginx.conf.
        #expect(!fixture.nginx.accessLog.contains("/healthz"), "\(fixture.nginx.accessLog)")
    }

    @Test("deploy/nginx.conf passes nginx -t and keeps the settings these tests rely on")
    func deployConfigurationIsValid() throws {
        let source = NginxFixture.repositoryRoot.appendingPathComponent("deploy/nginx.conf")
        let text = try String(contentsOf: source, encoding: .utf8)
        for directive in ["proxy_ignore_client_abort off;", "proxy_next_upstream error timeout http_503;",
                          "proxy_http_version 1.1;", "proxy_set_header Connection \"\";",
                          "proxy_set_header X-Request-Id $request_id;", "proxy_read_timeout 120s;",
                          "location = /healthz", "upstream greetd", "keepalive 32;"] {
            #expect(text.contains(directive), "deploy/nginx.conf lacks \(directive)")
        }

        // Its own paths are the system's: point them into a temporary directory.
        let directory = try NginxFixture.makeDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var copy = text
            .replacingOccurrences(of: "pid /run/nginx.pid;", with: "pid \(directory.path)/nginx.pid;")
            .replacingOccurrences(of: "/var/log/nginx/", with: "\(directory.path)/")
            .replacingOccurrences(of: "\nhttp {\n", with: "\nhttp {\n" + NginxFixture.tempPaths(in: directory))
        if geteuid() != 0 { copy = copy.replacingOccurrences(of: "user www-data;", with: "") }
        let file = directory.appendingPathComponent("deploy-nginx.conf")
        try copy.write(to: file, atomically: true, encoding: .utf8)
        let binary = try #require(NginxInstallation.shared.binary)
        let run = runNginxTool(binary, NginxInstallation.shared.errorLogArguments(directory.appendingPathComponent("error.log").path)
                              + ["-t", "-p", directory.path + "/", "-c", file.path], timeout: 10)
        #expect(run.status == 0, "nginx -t on deploy/nginx.conf: \(run.output)")
    }
}

/// `[request_id=ID]` in a greetd log line.
private func requestLabel(in line: String) -> String? {
    guard let start = line.range(of: "[request_id=") else { return nil }
    let rest = line[start.upperBound...]
    guard let end = rest.firstIndex(of: "]") else { return nil }
    return String(rest[..<end])
}

// MARK: - Finding or installing nginx

/// Where nginx is, found once per test run: `$NGINX_BINARY` if set, else `/usr/sbin/nginx` or
/// `nginx` on `PATH`; if none, installed once with `apt-get install -y nginx` (after an
/// `apt-get update` if the first try fails), each step bounded by a timeout.
struct NginxInstallation: Sendable {
    /// The nginx binary, or `nil` when there is none and it could not be installed.
    let binary: String?
    /// How it was found, or why there is none.
    let reason: String
    /// `nginx -V`: the version and configure arguments (which modules are built in).
    let build: String

    /// Bounds on each apt-get step. apt's own network timeouts are shortened too (see
    /// `locate()`), so that a machine without network fails fast rather than at these bounds.
    static let installTimeout: TimeInterval = 120
    static let updateTimeout: TimeInterval = 90

    static let shared = NginxInstallation.locate()

    /// Whether the suite can run; prints the reason once when it cannot.
    static var available: Bool {
        if shared.binary == nil { _ = reportUnavailable }
        return shared.binary != nil
    }

    private static let reportUnavailable: Void = {
        print("NginxTests skipped: nginx is not installed and could not be installed: \(shared.reason)")
    }()

    /// `-e FILE` (nginx 1.19.5 and later), so that nginx never opens its compiled-in error log,
    /// which a test may not be allowed to write.
    func errorLogArguments(_ path: String) -> [String] {
        supportsErrorLogFlag ? ["-e", path] : []
    }

    private var supportsErrorLogFlag: Bool {
        guard let range = build.range(of: #"nginx/1\.(\d+)\.(\d+)"#, options: .regularExpression) else { return true }
        let parts = build[range].dropFirst("nginx/1.".count).split(separator: ".").compactMap { Int($0) }
        guard parts.count == 2 else { return true }
        return parts[0] > 19 || (parts[0] == 19 && parts[1] >= 5)
    }

    /// Whether the http module `name` (`fastcgi`, `uwsgi`, `scgi`) is built in.
    func hasModule(_ name: String) -> Bool { !build.contains("--without-http_\(name)_module") }

    private static func locate() -> NginxInstallation {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["NGINX_BINARY"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                return NginxInstallation(binary: nil, reason: "NGINX_BINARY=\(path) is not an executable file", build: "")
            }
            return found(path, how: "NGINX_BINARY")
        }
        if let path = search(environment) { return found(path, how: "found") }

        let aptGet = "/usr/bin/apt-get"
        guard FileManager.default.isExecutableFile(atPath: aptGet) else {
            return NginxInstallation(binary: nil, reason: "no nginx in /usr/sbin or on PATH, and no apt-get to install it", build: "")
        }
        var command = [aptGet]
        if geteuid() != 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sudo") else {
                return NginxInstallation(binary: nil, reason: "no nginx, and not root (no sudo) to apt-get install it", build: "")
            }
            command = ["/usr/bin/sudo", "-n", "/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", aptGet]
        }
        // On a machine with an init system, installing the package also starts the distribution's
        // own nginx service on port 80 (containers usually forbid that in /usr/sbin/policy-rc.d);
        // these tests never use it.
        let options = ["-q", "-o", "DPkg::Lock::Timeout=60", "-o", "Acquire::Retries=0",
                       "-o", "Acquire::http::Timeout=20", "-o", "Acquire::https::Timeout=20"]
        let install = ["install", "-y", "--no-install-recommends"] + options + ["nginx"]
        let environmentForApt = ["DEBIAN_FRONTEND": "noninteractive"]
        print("NginxTests: nginx not found; installing it: \(command.joined(separator: " ")) \(install.joined(separator: " ")) (timeout \(Int(installTimeout))s)")
        var attempt = runNginxTool(command[0], Array(command.dropFirst()) + install, environment: environmentForApt, timeout: installTimeout)
        if attempt.status != 0 {
            print("NginxTests: apt-get install failed (\(attempt.summary)); running apt-get update (timeout \(Int(updateTimeout))s) and trying again")
            let update = runNginxTool(command[0], Array(command.dropFirst()) + ["update"] + options,
                                 environment: environmentForApt, timeout: updateTimeout)
            guard update.status == 0 else {
                return NginxInstallation(binary: nil, reason: "apt-get install nginx failed (\(attempt.summary)), then apt-get update failed (\(update.summary))", build: "")
            }
            attempt = runNginxTool(command[0], Array(command.dropFirst()) + install, environment: environmentForApt, timeout: installTimeout)
            guard attempt.status == 0 else {
                return NginxInstallation(binary: nil, reason: "apt-get install nginx failed after apt-get update (\(attempt.summary))", build: "")
            }
        }
        guard let path = search(environment) else {
            return NginxInstallation(binary: nil, reason: "apt-get install nginx succeeded, yet there is no nginx in /usr/sbin or on PATH", build: "")
        }
        return found(path, how: "installed with apt-get")
    }

    private static func search(_ environment: [String: String]) -> String? {
        let directories = ["/usr/sbin"] + (environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/local/sbin", "/usr/local/nginx/sbin"]
        return directories.map { $0 + "/nginx" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func found(_ path: String, how: String) -> NginxInstallation {
        let version = runNginxTool(path, ["-V"], timeout: 10)
        guard version.status == 0 else {
            return NginxInstallation(binary: nil, reason: "\(path) -V failed (\(version.summary))", build: "")
        }
        let first = version.output.split(separator: "\n").first.map(String.init) ?? path
        print("NginxTests: using \(path) (\(how)): \(first)")
        return NginxInstallation(binary: path, reason: how, build: version.output)
    }
}

/// A finished (or timed-out) run of a helper tool.
private struct NginxToolRun: Sendable {
    /// The exit status; `nil` if the tool did not finish within its timeout and was killed.
    let status: Int32?
    /// Standard output and standard error, interleaved.
    let output: String

    /// The status and the last lines of output, for a message.
    var summary: String {
        let tail = output.split(separator: "\n").suffix(4).joined(separator: " | ")
        return "\(status.map { "exit \($0)" } ?? "timed out"): \(tail)"
    }
}

/// Runs `executable` to its end, or kills it after `timeout`; output goes through a file, so
/// that a chatty tool never blocks on a full pipe.
private func runNginxTool(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
             timeout: TimeInterval) -> NginxToolRun {
    let outputFile = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("greetd-nginx-tool-\(getpid())-\(UUID().uuidString.prefix(8)).out")
    guard FileManager.default.createFile(atPath: outputFile.path, contents: nil),
          let handle = try? FileHandle(forWritingTo: outputFile) else {
        return NginxToolRun(status: -1, output: "cannot create \(outputFile.path)")
    }
    defer {
        try? handle.close()
        try? FileManager.default.removeItem(at: outputFile)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = handle
    process.standardError = handle
    do {
        try process.run()
    } catch {
        return NginxToolRun(status: -1, output: "cannot run \(executable): \(error)")
    }
    let timedOut = !process.exits(within: timeout)
    let output = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
    return NginxToolRun(status: timedOut ? nil : process.terminationStatus, output: output)
}

// MARK: - The setup: two greetd, one nginx

/// Two greetd instances on free loopback ports and an nginx in front of them, configured like
/// deploy/nginx.conf. `stop()` ends all three; call it in a `defer`.
private final class NginxFixture {
    let greetds: [GreetdProcess]
    let nginx: NginxServer
    var port: UInt16 { nginx.port }

    init() throws {
        var started: [GreetdProcess] = []
        do {
            for _ in 0..<2 {
                let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--tick", "50ms", "--shutdown-timeout", "2s"])
                started.append(greetd)
                _ = try greetd.waitForLine(containing: "Server listening on http://", timeout: NginxTests.wait)
            }
            let ports = try started.map { try $0.listeningPort() }
            nginx = try NginxServer(upstreams: ports)
            greetds = started
        } catch {
            for greetd in started { Self.stop(greetd) }
            throw error
        }
    }

    deinit { stop() }

    /// Stops nginx (SIGQUIT: graceful), then every greetd still running (SIGTERM), and removes
    /// nginx's directory. Idempotent.
    func stop() {
        nginx.stop()
        for greetd in greetds { Self.stop(greetd) }
    }

    private static func stop(_ greetd: GreetdProcess) {
        guard greetd.process.isRunning else { return }
        greetd.signal(SIGTERM)
        if (try? greetd.waitForExit(timeout: NginxTests.wait)) == nil {
            greetd.signal(SIGKILL)
            _ = try? greetd.waitForExit(timeout: NginxTests.wait)
        }
    }

    /// The first greetd, and its line, with a stderr line containing `fragment`.
    func waitForGreetdLine(containing fragment: String) throws -> (GreetdProcess, GreetdProcess.Line) {
        let deadline = Date().addingTimeInterval(NginxTests.wait)
        while Date() < deadline {
            for greetd in greetds {
                if let line = greetd.stderrLines.first(where: { $0.text.contains(fragment) }) { return (greetd, line) }
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
        throw TestFailure("no greetd logged \"\(fragment)\" within \(NginxTests.wait)s; got:\n"
            + greetds.map(\.stderrText).joined(separator: "\n---\n"))
    }

    /// The first greetd (by index) for which `condition` holds.
    func waitForGreetd(where condition: (Int, GreetdProcess) -> Bool) throws -> GreetdProcess {
        let deadline = Date().addingTimeInterval(NginxTests.wait)
        while Date() < deadline {
            for (index, greetd) in greetds.enumerated() where condition(index, greetd) { return greetd }
            Thread.sleep(forTimeInterval: 0.002)
        }
        throw TestFailure("no greetd got there within \(NginxTests.wait)s; got:\n" + greetds.map(\.stderrText).joined(separator: "\n---\n"))
    }

    /// The package's root directory (this file is Tests/GreetdCLITests/NginxTests.swift).
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A fresh directory for one nginx, readable by its worker processes.
    static func makeDirectory() throws -> URL {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("greetd-nginx-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        return directory
    }

    /// Every temp path nginx would otherwise create under its compiled-in prefix (often
    /// /var/lib/nginx, which a test may not write).
    static func tempPaths(in directory: URL) -> String {
        var lines = ["client_body_temp_path \(directory.path)/client_body_temp;",
                     "proxy_temp_path \(directory.path)/proxy_temp;"]
        for module in ["fastcgi", "uwsgi", "scgi"] where NginxInstallation.shared.hasModule(module) {
            lines.append("\(module)_temp_path \(directory.path)/\(module)_temp;")
        }
        return lines.map { "    " + $0 + "\n" }.joined()
    }
}

/// An nginx master process (with one worker) run in the foreground from its own directory.
private final class NginxServer {
    let directory: URL
    let port: UInt16
    let process: Process
    private var stopped = false

    var accessLogPath: String { directory.appendingPathComponent("access.log").path }
    var errorLogPath: String { directory.appendingPathComponent("error.log").path }
    var accessLog: String { (try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? "" }
    var errorLog: String { (try? String(contentsOfFile: errorLogPath, encoding: .utf8)) ?? "" }

    /// Starts nginx on a free loopback port in front of `upstreams` (greetd ports on 127.0.0.1),
    /// and waits until it accepts connections. A port taken in between is tried again.
    init(upstreams: [UInt16]) throws {
        guard let binary = NginxInstallation.shared.binary else { throw TestFailure("no nginx") }
        directory = try NginxFixture.makeDirectory()
        var lastFailure = ""
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let configuration = directory.appendingPathComponent("nginx.conf")
            try Self.configuration(directory: directory, port: port, upstreams: upstreams)
                .write(to: configuration, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = NginxInstallation.shared.errorLogArguments(directory.appendingPathComponent("error.log").path)
                + ["-p", directory.path + "/", "-c", configuration.path]
            let output = directory.appendingPathComponent("nginx.out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            try? handle.close()
            if Self.waitUntilAccepting(port: port, process: process) {
                self.port = port
                self.process = process
                return
            }
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
            lastFailure = ((try? String(contentsOf: output, encoding: .utf8)) ?? "")
                + ((try? String(contentsOf: directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? "")
            guard lastFailure.contains("Address already in use") else { break }
        }
        try? FileManager.default.removeItem(at: directory)
        throw TestFailure("nginx did not start:\n\(lastFailure)")
    }

    deinit { stop() }

    /// SIGQUIT (graceful shutdown: finish requests in flight, close idle connections); SIGTERM
    /// if it takes longer than a few seconds, SIGKILL as a last resort. Removes its directory.
    func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            // Ignored: kill fails only with ESRCH once nginx has exited, which the wait sees.
            _ = kill(process.processIdentifier, SIGQUIT)
            _ = process.exits(within: NginxTests.wait, grace: 2)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Lines of the access log containing `fragment`, once there are `count` of them.
    func waitForAccessLines(containing fragment: String, count: Int) throws -> [String] {
        let deadline = Date().addingTimeInterval(NginxTests.wait)
        while true {
            let lines = accessLog.split(separator: "\n").map(String.init).filter { $0.contains(fragment) }
            if lines.count >= count { return lines }
            guard Date() < deadline else {
                throw TestFailure("\(lines.count) of \(count) access log lines containing \"\(fragment)\" within \(NginxTests.wait)s; got:\n\(accessLog)")
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    func waitForAccessLine(containing fragment: String) throws -> String {
        try waitForAccessLines(containing: fragment, count: 1)[0]
    }

    private static func waitUntilAccepting(port: UInt16, process: Process) -> Bool {
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline {
            if connectErrno(port: port, timeout: .seconds(1)) == nil { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    /// The configuration: deploy/nginx.conf's proxy settings, with this test's ports and paths,
    /// in the foreground, with one worker and logs that show every request's status and id.
    static func configuration(directory: URL, port: UInt16, upstreams: [UInt16]) -> String {
        let dir = directory.path
        // As root, nginx would run its worker as `nobody`; stay the current user instead.
        let user = geteuid() == 0 ? "user root;\n" : ""
        let servers = upstreams.map { "        server 127.0.0.1:\($0) max_fails=3 fail_timeout=10s;" }.joined(separator: "\n")
        return """
            # Generated by NginxTests from a template modelled on deploy/nginx.conf.
            daemon off;
            master_process on;
            worker_processes 1;
            \(user)pid \(dir)/nginx.pid;
            # info: shows "client prematurely closed connection" for a client abort.
            error_log \(dir)/error.log info;

            events {
                worker_connections 1024;
            }

            http {
                default_type application/octet-stream;
            \(NginxFixture.tempPaths(in: directory).dropLast())

                log_format greetd 'status=$status request_id=$request_id method=$request_method '
                                  'uri="$request_uri" client=$remote_addr time=$time_iso8601 '
                                  'upstream="$upstream_addr" upstream_status="$upstream_status" '
                                  'request_time=$request_time upstream_time="$upstream_response_time" '
                                  'bytes=$body_bytes_sent';
                access_log \(dir)/access.log greetd;

                upstream greetd {
                    least_conn;
            \(servers)
                    keepalive 8;
                    keepalive_timeout 50s;
                }

                server {
                    listen 127.0.0.1:\(port);
                    server_name _;

                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_set_header Host $host;
                    proxy_set_header X-Request-Id $request_id;
                    proxy_hide_header X-Request-Id;
                    add_header X-Request-Id $request_id always;

                    proxy_ignore_client_abort off;
                    proxy_next_upstream error timeout http_503;
                    proxy_next_upstream_tries 3;
                    proxy_connect_timeout 2s;
                    proxy_send_timeout 10s;
                    proxy_read_timeout 120s;

                    location / {
                        proxy_pass http://greetd;
                    }

                    location = /healthz {
                        proxy_pass http://greetd;
                        proxy_connect_timeout 1s;
                        proxy_read_timeout 5s;
                        access_log off;
                    }
                }
            }

            """
    }
}

// MARK: - A blocking HTTP client

/// A connection to 127.0.0.1:`port` (nginx) whose every read is bounded by `timeout`.
private func nginxClient(port: UInt16, timeout: TimeInterval = NginxTests.wait) throws -> LoopbackConnection {
    try LoopbackConnection(port: port, timeout: .seconds(timeout))
}

/// One request on a new connection, and its response.
private func nginxExchange(port: UInt16, _ request: String) throws -> HTTPReply {
    try HTTPReply(parsing: rawExchange(port: port, request, timeout: .seconds(NginxTests.wait)))
}

extension GreetdProcess {
    /// The stderr lines containing `fragment` so far.
    fileprivate func lines(containing fragment: String) -> [Line] {
        stderrLines.filter { $0.text.contains(fragment) }
    }
}
