#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A parsed HTTP response.
struct TestResponse {
    /// The status line as sent, e.g. `HTTP/1.1 200 OK`.
    let statusLine: String
    let status: Int
    let headers: [String: String]  // lower-cased names
    let body: String
}

/// How a test client gives up on a request.
enum AbortStyle: String, CaseIterable, Sendable, CustomStringConvertible {
    /// close(2): the kernel sends FIN.
    case fin
    /// SO_LINGER 0 then close(2): the kernel sends RST.
    case rst
    /// shutdown(SHUT_WR): FIN, but the socket stays open for reading.
    case half

    var description: String { rawValue }
}

/// A blocking client socket with timeouts, able to abort the ways real clients do.
final class TestConnection {
    private(set) var fd: Int32
    private var buffer: [UInt8] = []

    init(port: UInt16, host: String = "127.0.0.1") throws {
        let ipv6 = host.contains(":")
        fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var result: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            inet_pton(AF_INET, host, &address.sin_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestFailure("connect to \(host):\(port): \(message)")
        }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Moves the socket to a descriptor number of 2048 or more, if the open-file limit allows,
    /// so that a test holding hundreds of clients leaves the low numbers (below `FD_SETSIZE`)
    /// to servers in the same process: a `select`-backend base aborts on a descriptor past 1023.
    func moveAboveSelectRange() {
        let high = fcntl(fd, F_DUPFD_CLOEXEC, 2048)
        guard high >= 0 else { return }
        Glibc.close(fd)
        fd = high
    }

    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// `GET target HTTP/1.1` with a Host header.
    func sendGet(_ target: String = "/", extraHeaders: String = "") throws {
        try send("GET \(target) HTTP/1.1\r\nHost: test\r\n\(extraHeaders)\r\n")
    }

    /// Reads more bytes; returns false at end of stream. Never blocks the calling thread (tests
    /// run on the cooperative pool): it polls without waiting, and sleeps the task between polls.
    private func fill(until deadline: ContinuousClock.Instant) async throws -> Bool {
        while true {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out reading from server") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) > 0 { break }
            try await Task.sleep(for: .milliseconds(1))
        }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return true }
            throw TestFailure("recv: \(String(cString: strerror(errno)))")
        }
        if n == 0 { return false }
        buffer += chunk[0..<n]
        return true
    }

    /// Reads one response (body sized by Content-Length, or up to end of stream).
    func readResponse(timeout: Duration = .seconds(5), headRequest: Bool = false) async throws -> TestResponse {
        let deadline = ContinuousClock.now + timeout
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            if let range = buffer.firstRange(of: separator) { headerEnd = range.upperBound; break }
            guard try await fill(until: deadline) else { throw TestFailure("connection closed before a response (got \(buffer.count) bytes)") }
        }
        let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: true)
        let firstLine = String(lines.removeFirst())
        let statusLine = firstLine.split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw TestFailure("bad status line: \(head)") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: " ")
        }
        buffer.removeFirst(headerEnd!)
        var body: [UInt8] = []
        if headRequest {
            body = []
        } else if let lengthText = headers["content-length"], let length = Int(lengthText) {
            while buffer.count < length {
                guard try await fill(until: deadline) else { throw TestFailure("connection closed inside a body") }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else {
            while try await fill(until: deadline) {}
            body = buffer
            buffer = []
        }
        return TestResponse(statusLine: firstLine, status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    /// Whether the server closes the connection within `timeout` (reading and discarding data).
    func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                if try await !fill(until: deadline) { return true }
            } catch {
                return errno == ECONNRESET
            }
        }
    }

    /// Aborts the request the way `style` says.
    func abort(_ style: AbortStyle) {
        switch style {
        case .fin:
            close()
        case .rst:
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close()
        case .half:
            shutdown(fd, Int32(SHUT_WR))
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}

/// Raises this process's open-file soft limit to its hard limit (the concurrency tests need
/// a descriptor per client and per server connection).
func raiseOpenFileLimit() {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}
