import Foundation
import Synchronization
import Testing

/// The `greetd` binary built next to this test bundle, run as a child process with its
/// standard error collected line by line as it arrives.
final class GreetdProcess: Sendable {
    struct Line: Sendable {
        let arrival: Date
        let text: String
    }

    /// The `greetd` under test: `$GREETD_BINARY` if set (CI points it at the release build, whose
    /// optimised object lifetimes a debug build does not exercise), else the one built next to
    /// this test bundle.
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["GREETD_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        // Linux: .build/debug/greetdPackageTests.xctest is the test executable itself.
        if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("greetd").path) {
            directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        }
        return directory.appendingPathComponent("greetd")
    }

    let process: Process
    private let lines = Mutex<[Line]>([])
    private let stdout = Mutex<String>("")
    private let readers = DispatchGroup()

    /// Runs greetd (or `executable`, e.g. a wrapper such as `prlimit` that runs greetd itself).
    init(_ arguments: [String], environment: [String: String] = [:], executable: URL? = nil) throws {
        process = Process()
        process.executableURL = executable ?? Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let errPipe = Pipe()
        let outPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = outPipe
        try process.run()
        let errHandle = errPipe.fileHandleForReading
        let outHandle = outPipe.fileHandleForReading
        readers.enter()
        Thread.detachNewThread { [self] in
            var pending = Data()
            while true {
                let chunk = errHandle.availableData
                if chunk.isEmpty { break }
                let now = Date()
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 10) {
                    let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lines.withLock { $0.append(Line(arrival: now, text: text)) }
                }
            }
            if !pending.isEmpty {
                lines.withLock { $0.append(Line(arrival: Date(), text: String(decoding: pending, as: UTF8.self))) }
            }
            readers.leave()
        }
        readers.enter()
        Thread.detachNewThread { [self] in
            let data = outHandle.readDataToEndOfFile()
            stdout.withLock { $0 = String(decoding: data, as: UTF8.self) }
            readers.leave()
        }
    }

    var stderrLines: [Line] { lines.withLock { $0 } }
    var stderrText: String { stderrLines.map(\.text).joined(separator: "\n") }
    var stdoutText: String { stdout.withLock { $0 } }

    /// Waits for a stderr line containing `fragment`.
    @discardableResult
    func waitForLine(containing fragment: String, timeout: TimeInterval = 10) throws -> Line {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stderrLines.first(where: { $0.text.contains(fragment) }) { return line }
            Thread.sleep(forTimeInterval: 0.005)
        }
        throw CLIFailure("no stderr line containing \"\(fragment)\" within \(timeout)s; got:\n\(stderrText)")
    }

    /// The port from `Server listening on http://127.0.0.1:PORT`.
    func listeningPort() throws -> UInt16 {
        let line = try waitForLine(containing: "Server listening on http://")
        guard let port = line.text.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            throw CLIFailure("cannot read a port from: \(line.text)")
        }
        return port
    }

    /// Waits for the process to exit and for its output to be read; returns the exit status.
    func waitForExit(timeout: TimeInterval = 10) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else {
                process.terminate()
                throw CLIFailure("greetd did not exit within \(timeout)s")
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        readers.wait()
        return process.terminationStatus
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Never leaves a greetd behind: SIGTERM, then SIGKILL if it is still there after 3 s.
    deinit {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One blocking request over loopback: send `request`, read until the server closes.
func rawExchange(port: UInt16, host: String = "127.0.0.1", _ request: String) throws -> String {
    let family = host.contains(":") ? AF_INET6 : AF_INET
    let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let connected: Int32
    if family == AF_INET6 {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        inet_pton(AF_INET6, host, &address.sin6_addr)
        connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    } else {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }
    guard connected == 0 else { throw CLIFailure("connect \(host):\(port): \(String(cString: strerror(errno)))") }
    _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    var received = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
}

/// An HTTP response split into status, headers and body.
struct HTTPReply {
    let raw: String
    let status: Int
    let headers: [(name: String, value: String)]
    let body: String

    init(parsing raw: String) throws {
        self.raw = raw
        guard let end = raw.range(of: "\r\n\r\n") else { throw CLIFailure("no complete header in: \(raw.debugDescription)") }
        let head = raw[..<end.lowerBound].components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw CLIFailure("bad status line: \(head[0].debugDescription)")
        }
        self.status = status
        headers = head.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        body = String(raw[end.upperBound...])
    }

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body length the headers announce, if any.
    var contentLength: Int? { header("Content-Length").flatMap { Int($0) } }
}

/// `127.0.0.1:port` as a `sockaddr_in`.
func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    return address
}

/// A blocking TCP socket connected to `127.0.0.1:port`, or `nil` (with `errno` set) if the
/// connection failed. The caller closes it.
func connectLoopback(port: UInt16) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = loopbackAddress(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        let code = errno
        close(fd)
        errno = code
        return nil
    }
    return fd
}

/// Sends all of `text` on a blocking socket.
func sendAll(_ fd: Int32, _ text: String) throws {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw CLIFailure("send: \(String(cString: strerror(errno)))") }
        offset += n
    }
}
