import Foundation
import TestSupport
import Testing

/// greetd as a user runs it: flags, errors, logs on stderr, signals.
@Suite("greetd command line", .serialized)
struct CLITests {
    @Test("--help explains the flags and their defaults")
    func help() throws {
        let greetd = try GreetdProcess(["--help"])
        #expect(try greetd.waitForExit() == 0)
        let text = greetd.stdoutText
        for fragment in ["--host", "--port", "--delay", "--tick", "--log-level", "--max-header-bytes",
                         "(default: 5s)", "(default: 1s)", "8080", "(default: localhost)", "context canceled"] {
            #expect(text.contains(fragment), "help lacks \(fragment)")
        }
    }

    @Test("a bad duration flag exits non-zero with Go's reason", arguments: [
        (["--delay", "5x"], #"unknown unit "x""#),
        (["--tick", "0"], "tick must be positive"),
        (["--delay=-1s"], "delay must not be negative"),
        (["--delay", "2m", "--max-delay", "1m"], "above max-delay"),
        (["--port", "70000"], "--port"),
    ])
    func badFlags(arguments: [String], fragment: String) throws {
        let greetd = try GreetdProcess(arguments)
        let status = try greetd.waitForExit()
        #expect(status != 0)
        #expect(greetd.stderrText.contains(fragment), "stderr: \(greetd.stderrText)")
    }

    @Test("a port in use: exit 1 naming the address and the reason")
    func portInUse() throws {
        let first = try GreetdProcess(["--host", "127.0.0.1", "--port", "0"])
        let port = try first.listeningPort()
        let second = try GreetdProcess(["--host", "127.0.0.1", "--port", "\(port)"])
        #expect(try second.waitForExit() == 1)
        #expect(second.stderrText.contains("cannot listen on 127.0.0.1:\(port): Address already in use"), "\(second.stderrText)")
        first.signal(SIGTERM)
        #expect(try first.waitForExit() == 0)
    }

    @Test("a host that does not resolve: exit 1 naming it")
    func badHost() throws {
        let greetd = try GreetdProcess(["--host", "no-such-host.invalid", "--port", "0"])
        #expect(try greetd.waitForExit() == 1)
        #expect(greetd.stderrText.contains("cannot resolve host \"no-such-host.invalid\""), "\(greetd.stderrText)")
    }

    @Test("localhost listens on both 127.0.0.1 and ::1, on one port")
    func localhostBothFamilies() throws {
        let greetd = try GreetdProcess(["--port", "0", "--delay", "0s"])
        let port = try greetd.listeningPort()
        try greetd.waitForLine(containing: "Server listening on http://[::1]:\(port)")
        #expect(try rawExchange(port: port, "GET / HTTP/1.0\r\n\r\n").contains("Hello Gopher!"))
        #expect(try rawExchange(port: port, host: "::1", "GET / HTTP/1.0\r\n\r\n").contains("Hello Gopher!"))
        greetd.signal(SIGINT)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("the seed's walk-through: greet, abort, see the context error; under epoll and select",
          arguments: [[:], ["EVENT_NOEPOLL": "1", "EVENT_NOPOLL": "1"]])
    func walkThrough(environment: [String: String]) throws {
        // The epoll case must not inherit the select setting when the whole suite runs under it.
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--delay", "100ms", "--tick", "20ms"],
                                       environment: environment,
                                       unsetting: environment.isEmpty ? ["EVENT_NOEPOLL", "EVENT_NOPOLL"] : [])
        let port = try greetd.listeningPort()
        let backend = environment.isEmpty ? "epoll" : "select"
        try greetd.waitForLine(containing: "Event backend: \(backend)")

        let reply = try rawExchange(port: port, "GET / HTTP/1.0\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.0 200") || reply.hasPrefix("HTTP/1.1 200"))
        #expect(reply.hasSuffix("\r\n\r\nHello Gopher!\n"))
        try greetd.waitForLine(containing: "-1] Handled greeting request")

        // Ctrl+C on curl: the client closes mid-greeting.
        let client = try LoopbackConnection(port: port)
        try client.sendGet("/?delay=10s")
        try greetd.waitForLine(containing: "-2] Greetings are hard. Thinking...")
        client.abort(.fin)
        let cancel = try greetd.waitForLine(containing: "-2] Context Error: context canceled")
        // A greeting of five ticks runs after the cancel: had request 2 kept ticking, its lines
        // would be among those that greeting's ticks come with. greetd's own timers set the
        // window, not the test's clock.
        let witness = try HTTPReply(parsing: rawExchange(port: port, "GET /?delay=100ms HTTP/1.0\r\n\r\n"))
        #expect(witness.status == 200)
        try greetd.waitForLine(containing: "-3] Handled greeting request")
        let after = greetd.stderrLines.drop { $0.text != cancel.text }
        #expect(!after.contains { $0.text.contains("-2] Greetings are hard") }, "tick after the context error")

        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
        // Lines are whole and timestamped: 2026-11-25T10:48:50.123456Z level ...
        for line in greetd.stderrLines {
            #expect(line.text.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \w+ "#, options: .regularExpression) != nil, "\(line.text)")
        }
    }
}
