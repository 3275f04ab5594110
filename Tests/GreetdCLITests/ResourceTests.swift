import Foundation
import Testing

/// greetd out of file descriptors: it must pause accepting rather than spin, log the condition
/// at a bounded rate, stay up, and serve again once descriptors free up.
@Suite("greetd out of descriptors", .serialized)
struct ResourceTests {
    static let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test("RLIMIT_NOFILE 64 and 300 connection attempts: no spin, bounded log, serves again",
          .enabled(if: prlimit != nil, "prlimit (util-linux) is not installed"))
    func outOfDescriptors() throws {
        // prlimit sets the hard limit too, so greetd cannot raise its soft limit past 64.
        let greetd = try GreetdProcess(["--nofile=64:64", GreetdProcess.binary.path, "--host", "127.0.0.1", "--port", "0",
                                        "--workers", "1", "--log-level", "info", "--tick", "10s"],
                                       executable: URL(fileURLWithPath: Self.prlimit!))
        let port = try greetd.listeningPort()
        var clients: [Int32] = []
        defer { for fd in clients { close(fd) } }
        for _ in 0..<300 {
            guard let fd = connectLoopback(port: port) else { continue }
            _ = "GET /?delay=5s HTTP/1.1\r\nHost: x\r\n\r\n".withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            clients.append(fd)
        }
        try greetd.waitForLine(containing: "Cannot accept connections: Too many open files (EMFILE)")
        // While out of descriptors, greetd must not burn CPU retrying accept.
        let before = try cpuTicks(of: greetd.process.processIdentifier)
        Thread.sleep(forTimeInterval: 1.5)
        let after = try cpuTicks(of: greetd.process.processIdentifier)
        #expect(after - before < 30, "greetd used \(after - before) clock ticks in 1.5 s while out of descriptors")
        #expect(greetd.process.isRunning)

        for fd in clients { close(fd) }
        clients = []
        Thread.sleep(forTimeInterval: 1.2)  // the listener resumes within its backoff (at most 1 s)
        let reply = try rawExchange(port: port, "GET /?delay=0s HTTP/1.0\r\n\r\n")
        #expect(reply.hasSuffix("Hello Gopher!\n"), "no greeting after descriptors freed up: \(reply)")

        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
        let errorLines = greetd.stderrLines.filter { $0.text.contains("Cannot accept connections") }
        let span = (errorLines.last?.arrival ?? Date()).timeIntervalSince(errorLines.first?.arrival ?? Date())
        #expect(Double(errorLines.count) <= span + 2, "\(errorLines.count) accept-error lines in \(span) s: not rate-limited")
    }

    @Test("a client that pipelines without reading cannot grow greetd's memory past a bound")
    func pipelineFloodIsBounded() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--workers", "1", "--log-level", "info", "--tick", "10s"])
        let port = try greetd.listeningPort()
        let before = try residentBytes(port)
        // Pipelined requests, sent as fast as the server takes them, never reading a reply: the
        // replies back up, and evhttp goes on reading while it writes them.
        guard let fd = connectLoopback(port: port) else { throw CLIFailure("connect: \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let chunk = Array(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 1000).utf8)
        var sent = 0
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && sent < 64 << 20 {
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n } else { Thread.sleep(forTimeInterval: 0.005) }
        }
        Thread.sleep(forTimeInterval: 0.3)
        let after = try residentBytes(port)
        // One connection may hold a request's worth plus the pipelining allowance (about 1.1 MiB
        // with the defaults) and the replies waiting to be written; never what the client sent.
        #expect(after - before < 16 << 20, "sent \(sent >> 20) MiB; greetd grew \((after - before) >> 20) MiB")
        close(fd)  // a client that never reads would keep the drain waiting for its replies
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    private func residentBytes(_ port: UInt16) throws -> Int {
        let text = try rawExchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n")
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("process_resident_memory_bytes ") }),
              let value = Double(line.split(separator: " ")[1]) else { throw CLIFailure("no RSS in /metrics") }
        return Int(value)
    }

    private func cpuTicks(of pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!  // utime + stime, fields 14 and 15 of the file
    }
}
