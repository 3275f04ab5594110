import Foundation
import EventHTTPSystem
import TestSupport
import Testing

/// greetd as a service manager runs it: graceful drain on SIGTERM/SIGINT, a second signal,
/// systemd readiness notifications, several workers on one port, health checks.
///
/// Every wait below is bounded by a few seconds, so a misbehaving binary fails a test instead of
/// hanging the suite.
@Suite("greetd as a service", .serialized)
struct ServiceCLITests {
    /// The bound on any single wait (a log line, a reply, an exit).
    static let wait: TimeInterval = 3

    @Test("SIGTERM: greetings within the budget finish, the rest get 503 with Connection: close, new connections are refused")
    func sigtermWithGreetingsInFlight() throws {
        // The budget is ten times the short greeting, so that a slow machine still finishes it.
        let budget: TimeInterval = 2
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--shutdown-timeout", "\(Int(budget))s", "--tick", "20ms"])
        let port = try greetd.servicePort()
        _ = try greetd.workerCount()

        // One after the other, so that the short greeting is request 1 and the long one request 2.
        let short = try LoopbackConnection(port: port, timeout: .seconds(Self.wait))
        try short.send("GET /?delay=200ms HTTP/1.1\r\nHost: x\r\n\r\n")
        try greetd.waitForLines(containing: "Handling greeting request", count: 1)
        let long = try LoopbackConnection(port: port, timeout: .seconds(Self.wait))
        try long.send("GET /?delay=10s HTTP/1.1\r\nHost: x\r\n\r\n")
        try greetd.waitForLines(containing: "Handling greeting request", count: 2)

        let signalled = Date()
        greetd.signal(SIGTERM)
        // The last worker to close its listeners logs this line, once for the service.
        try greetd.waitForLines(containing: "Draining: stopped accepting connections", count: 1)
        let refusal = connectErrno(port: port, timeout: .seconds(Self.wait))
        let refusalCheckedAt = Date()
        #expect(refusal == .connectionRefused,
                "a new connection during the drain: expected ECONNREFUSED, got \(refusal.map { "\($0)" } ?? "connected")")

        // The short greeting finishes within the budget.
        let shortReply = try short.readResponse()
        #expect(shortReply.status == 200, "\(shortReply.raw)")
        #expect(shortReply.body == "Hello Gopher!\n", "\(shortReply.raw)")

        // The long one is cancelled when the budget is spent: 503, Connection: close, then EOF.
        let (longText, longEnd) = long.readToEnd(timeout: .seconds(budget + Self.wait))
        let canceledAt = Date()
        #expect(longEnd == .closed, "the server should close the connection after its 503 (FIN), got \(longEnd)")
        let longReply = try HTTPReply(parsing: longText)
        #expect(longReply.status == 503, "\(longText)")
        #expect(longReply.header("Connection")?.lowercased() == "close", "\(longText)")
        #expect(longReply.body == "server shutting down\n", "\(longText)")
        #expect(canceledAt.timeIntervalSince(signalled) > budget * 0.75, "the 503 came before the \(budget)s budget was spent")

        let longID = try #require(longReply.header("X-Request-Id"), "\(longText)")
        let shortID = shortReply.header("X-Request-Id") ?? "?"
        // Generated ids: a per-process prefix, then the number.
        #expect(longID.hasSuffix("-2") && shortID.hasSuffix("-1"), "request ids: short \(shortID), long \(longID)")
        let cause = try greetd.waitForLine(
            containing: "[request_id=\(longID)] Context Error: context canceled (cause: server shutting down)", timeout: Self.wait)
        #expect(refusalCheckedAt < cause.arrival, "the refusal check must run while the long greeting is still thinking")
        #expect(!greetd.stderrText.contains("[request_id=\(shortID)] Context Error"), "\(greetd.stderrText)")
        #expect(greetd.stderrLines.contains { $0.text.contains("Draining") })

        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
        #expect(greetd.stderrText.contains("Stopped"))
    }

    @Test("a second signal cancels greetings in flight at once", arguments: ["SIGTERM", "SIGINT"])
    func secondSignalCancels(second: String) throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--shutdown-timeout", "30s", "--tick", "20ms"])
        let port = try greetd.servicePort()
        let client = try LoopbackConnection(port: port, timeout: .seconds(Self.wait))
        try client.send("GET /?delay=30s HTTP/1.1\r\nHost: x\r\n\r\n")
        try greetd.waitForLine(containing: "-1] Handling greeting request", timeout: Self.wait)

        greetd.signal(SIGTERM)
        // Logged once for the service, by the last worker to close its listeners.
        try greetd.waitForLines(containing: "Draining: stopped accepting connections", count: 1)
        let signalled = Date()
        greetd.signal(second == "SIGINT" ? SIGINT : SIGTERM)

        let reply = try client.readResponse()
        let elapsed = Date().timeIntervalSince(signalled)
        #expect(reply.status == 503, "\(reply.raw)")
        #expect(elapsed < 1, "503 took \(elapsed)s after the second signal")
        try greetd.waitForLine(containing: "Received \(second) again: cancelling greetings in flight", timeout: Self.wait)
        try greetd.waitForLine(containing: "-1] Context Error: context canceled (cause: server shutting down)", timeout: Self.wait)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
    }

    @Test("SIGINT with nothing in flight: exit 0 at once")
    func idleDrainExitsPromptly() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--tick", "20ms"])
        _ = try greetd.servicePort()
        let signalled = Date()
        greetd.signal(SIGINT)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
        let elapsed = Date().timeIntervalSince(signalled)
        #expect(elapsed < 1, "exit took \(elapsed)s")
        #expect(greetd.stderrText.contains("Stopped"), "\(greetd.stderrText)")
    }

    @Test("systemd: READY=1 with the address once listening, STOPPING=1 on SIGTERM ($NOTIFY_SOCKET a path, or @abstract)",
          arguments: [false, true])
    func systemdNotify(abstract: Bool) throws {
        let notify = try NotifySocket(abstract: abstract)
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--tick", "20ms"],
                                       environment: ["NOTIFY_SOCKET": notify.environmentValue])
        let port = try greetd.servicePort()
        let ready = try #require(notify.receive(), "no datagram on \(notify.environmentValue); stderr:\n\(greetd.stderrText)")
        let fields = ready.split(separator: "\n").map(String.init)
        #expect(fields.contains("READY=1"), "\(ready)")
        #expect(fields.contains("STATUS=Listening on 127.0.0.1:\(port)"), "\(ready)")
        #expect(fields.contains("MAINPID=\(greetd.process.processIdentifier)"), "\(ready)")

        greetd.signal(SIGTERM)
        let stopping = notify.receive(until: { $0.split(separator: "\n").contains("STOPPING=1") })
        #expect(stopping != nil, "no STOPPING=1 datagram after SIGTERM")
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
    }

    @Test("--workers 2: every request answered, metrics add up across workers")
    func twoWorkers() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--workers", "2", "--delay", "0s"])
        let port = try greetd.servicePort()
        #expect(try greetd.workerCount() == 2)

        for index in 1...20 {
            let reply = try HTTPReply(parsing: rawExchange(port: port, "GET / HTTP/1.0\r\n\r\n"))
            #expect(reply.status == 200, "request \(index): \(reply.raw)")
            #expect(reply.body == "Hello Gopher!\n", "request \(index): \(reply.raw)")
        }
        // Scrape a few times: the kernel may hand each scrape to either worker, and both must
        // render the shared registry.
        for scrape in 1...6 {
            let reply = try HTTPReply(parsing: rawExchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n"))
            #expect(reply.status == 200, "scrape \(scrape): \(reply.raw)")
            let lines = reply.body.split(separator: "\n")
            #expect(lines.contains(#"greetd_requests_total{outcome="completed"} 20"#),
                    "scrape \(scrape): \(lines.filter { $0.hasPrefix("greetd_requests_total") })")
        }
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
    }

    @Test("--workers 2 on a port another greetd holds: exit 1, no silent SO_REUSEPORT sharing", arguments: [1, 2])
    func workersOnPortInUse(firstWorkers: Int) throws {
        let first = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--workers", "\(firstWorkers)", "--delay", "0s"])
        let port = try first.servicePort()
        let second = try GreetdProcess(["--host", "127.0.0.1", "--port", "\(port)", "--workers", "2"])
        let status = try second.waitForExit(timeout: Self.wait)
        #expect(status == 1, "\(second.stderrText)")
        #expect(second.stderrText.contains("cannot listen on 127.0.0.1:\(port): Address already in use"), "\(second.stderrText)")
        // The first one still owns the port.
        #expect(try rawExchange(port: port, "GET / HTTP/1.0\r\n\r\n").hasSuffix("Hello Gopher!\n"))
        first.signal(SIGTERM)
        #expect(try first.waitForExit(timeout: Self.wait) == 0, "\(first.stderrText)")
    }

    @Test("GET /healthz: 200 ok while serving")
    func healthz() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0"])
        let port = try greetd.servicePort()
        let reply = try HTTPReply(parsing: rawExchange(port: port, "GET /healthz HTTP/1.0\r\n\r\n"))
        #expect(reply.status == 200, "\(reply.raw)")
        #expect(reply.body == "ok\n", "\(reply.raw)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit(timeout: Self.wait) == 0, "\(greetd.stderrText)")
    }
}

// MARK: - Helpers

extension GreetdProcess {
    /// The listening port, waiting at most `ServiceCLITests.wait` for it.
    fileprivate func servicePort() throws -> UInt16 {
        try waitForLine(containing: "Server listening on http://", timeout: ServiceCLITests.wait)
        return try listeningPort()
    }

    /// `workers=N` from the `Event backend` line.
    fileprivate func workerCount() throws -> Int {
        let line = try waitForLine(containing: "Event backend:", timeout: ServiceCLITests.wait)
        guard let field = line.text.split(separator: " ").first(where: { $0.hasPrefix("workers=") }),
              let count = Int(field.dropFirst("workers=".count)) else {
            throw TestFailure("no workers=N in: \(line.text)")
        }
        return count
    }
}


/// A `$NOTIFY_SOCKET` listener: an `AF_UNIX` datagram socket on a fresh path, or on a fresh name
/// in the abstract namespace.
private final class NotifySocket {
    let fd: Int32
    /// What `NOTIFY_SOCKET` must say: the path, or `@name`.
    let environmentValue: String
    private let path: String?

    init(abstract: Bool) throws {
        let name = "greetd-notify-\(getpid())-\(UUID().uuidString.prefix(8))"
        var bytes: [UInt8]
        if abstract {
            bytes = [0] + Array(name.utf8)
            environmentValue = "@" + name
            path = nil
        } else {
            let file = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(name + ".sock").path
            bytes = Array(file.utf8)
            environmentValue = file
            path = file
            _ = unlink(file)  // a leftover of an earlier run, if any; ENOENT is the usual answer
        }
        var address = sockaddr_un()
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw TestFailure("socket path too long: \(environmentValue)")
        }
        fd = try SystemCalls.openSocket(domain: AF_UNIX, type: SocketKind.datagram)
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        // A path is NUL-terminated; an abstract name is exactly its bytes after the leading NUL.
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? MemoryLayout<sa_family_t>.size
        let length = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
        let bound = SystemCalls.valueOrErrno {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
        }
        if case .failure(let code) = bound {
            try? SystemCalls.closeDescriptor(fd)  // already failing: the bind's errno is the one to report
            throw TestFailure("bind \(environmentValue.debugDescription): \(code)")
        }
        setTimeouts(fd, .seconds(ServiceCLITests.wait))
    }

    deinit {
        // Teardown: a failure of either changes nothing the test checks.
        try? SystemCalls.closeDescriptor(fd)
        if let path { _ = unlink(path) }
    }

    /// The next datagram, or `nil` after `ServiceCLITests.wait` without one.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        // A failure is the receive timeout (EAGAIN) set in init: no datagram came.
        guard case .success(let n) = SystemCalls.valueOrErrno({ recv(fd, &buffer, buffer.count, 0) }) else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// The first datagram that satisfies `accept`, or `nil` once one receive times out.
    func receive(until accept: (String) -> Bool) -> String? {
        while let datagram = receive() {
            if accept(datagram) { return datagram }
        }
        return nil
    }
}
