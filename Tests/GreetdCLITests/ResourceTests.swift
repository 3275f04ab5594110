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
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { close(fd); continue }
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

    private func cpuTicks(of pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!  // utime + stime, fields 14 and 15 of the file
    }
}
