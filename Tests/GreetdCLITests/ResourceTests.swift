import Foundation
import GreetdRules
import EventHTTPSystem
import TestSupport
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
        defer { for fd in clients { try? SystemCalls.closeDescriptor(fd) } }  // teardown: a failure changes nothing
        for _ in 0..<300 {
            guard let fd = try? connectLoopback(port: port) else { continue }
            try? sendAll(fd, "GET /?delay=5s HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(fd)
        }
        try greetd.waitForLine(containing: "Cannot accept connections: Too many open files (EMFILE)")
        // While out of descriptors, greetd must not burn CPU retrying accept. Idle, it uses about
        // 1% of a core; spinning on accept, all of one. The bound is a third of a core.
        let (before, start) = (try cpuSeconds(of: greetd.process.processIdentifier), ContinuousClock.now)
        Thread.sleep(forTimeInterval: 1.5)
        let (after, wall) = (try cpuSeconds(of: greetd.process.processIdentifier), ContinuousClock.now - start)
        let share = (after - before) / wall.secondsValue
        print("ResourceTests: out of descriptors, greetd used \(String(format: "%.1f", share * 100))% of a core")
        #expect(share < 1.0 / 3, "greetd used \(after - before) s of CPU in \(wall) while out of descriptors")
        #expect(greetd.process.isRunning)

        for fd in clients { try SystemCalls.closeDescriptor(fd) }
        clients = []
        // The listener resumes within its backoff (at most 1 s); this request waits in the
        // backlog until then, bounded by rawExchange's timeout.
        let reply = try rawExchange(port: port, "GET /?delay=0s HTTP/1.0\r\n\r\n")
        #expect(reply.hasSuffix("Hello Gopher!\n"), "no greeting after descriptors freed up: \(reply)")

        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
        // At most one line a second, by greetd's own timestamps (arrival times at this end
        // bunch up when the machine is busy).
        let stamps = greetd.stderrLines.filter { $0.text.contains("Cannot accept connections") }.compactMap { LogLine(parsing: $0.text)?.time }
        let span = stamps.last.map { ($0 - stamps.first!).secondsValue } ?? 0
        #expect(!stamps.isEmpty)
        #expect(Double(stamps.count) <= span + 2, "\(stamps.count) accept-error lines in \(span) s: not rate-limited")
    }

    @Test("a client that pipelines without reading cannot grow greetd's memory past a bound")
    func pipelineFloodIsBounded() throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--workers", "1", "--log-level", "info", "--tick", "10s"])
        let port = try greetd.listeningPort()
        let before = try residentBytes(port)
        // Pipelined requests, sent as fast as the server takes them, never reading a reply: the
        // replies back up, and evhttp goes on reading while it writes them.
        let fd = try connectLoopback(port: port)
        try SystemCalls.setNonBlocking(fd)
        let chunk = Array(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 1000).utf8)
        var sent = 0
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && sent < 64 << 20 {
            let result = chunk.withUnsafeBytes { bytes in
                SystemCalls.valueOrErrno { send(fd, bytes.baseAddress, bytes.count, SendFlags.noSignal) }
            }
            // Would block (the replies backed up, the point of the test) or failed: wait a moment
            // and try again until the deadline; the memory figures below are what is checked.
            if case .success(let n) = result, n > 0 { sent += n } else { Thread.sleep(forTimeInterval: 0.005) }
        }
        let after = try residentBytes(port)
        // One connection may hold a request's worth plus the pipelining allowance (about 1.1 MiB
        // with the defaults) and the replies waiting to be written; never what the client sent.
        print("ResourceTests: pipelined \(sent >> 10) KiB without reading; greetd grew \((after - before) >> 10) KiB")
        #expect(after - before < 16 << 20, "sent \(sent >> 20) MiB; greetd grew \((after - before) >> 20) MiB")
        try SystemCalls.closeDescriptor(fd)  // a client that never reads would keep the drain waiting for its replies
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    private func residentBytes(_ port: UInt16) throws -> Int {
        let text = try rawExchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n")
        guard let value = PrometheusText.value(of: MetricName.residentMemory, in: text) else { throw TestFailure("no RSS in /metrics") }
        return Int(value)
    }

    /// User plus system CPU time of `pid`, in seconds (`/proc/PID/stat` fields 14 and 15).
    private func cpuSeconds(of pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return Double(Int(fields[11])! + Int(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
