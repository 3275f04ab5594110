import GreetdRules
import EventHTTPSystem
import EventHTTPCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one set of blocking loopback helpers every test target shares. Descriptors they return
// belong to the caller, who closes them. Socket-call failures are thrown as
// `LibeventError.callFailed(function:errno:)`, so a test can match the errno; everything else
// as `TestFailure`.

/// A test helper's failure, with a message that says what was expected and what came instead.
public struct TestFailure: Error, CustomStringConvertible {
    /// The message.
    public let description: String
    /// A failure saying `description`.
    public init(_ description: String) { self.description = description }
}

/// How a reader saw a connection end.
public enum StreamEnd: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed its side (FIN): a read returned 0.
    case closed
    /// The peer reset the connection (`ECONNRESET`).
    case reset
    /// Nothing more arrived before the deadline; the connection is still open.
    case timedOut
    /// A read failed with another errno.
    case failed(Errno)

    /// In words, with the errno's name.
    public var description: String {
        switch self {
        case .closed: return "closed (FIN)"
        case .reset: return "reset (ECONNRESET)"
        case .timedOut: return "still open at the deadline"
        case .failed(let code): return "recv failed: \(code)"
        }
    }
}

/// `127.0.0.1` (or `::1`, or any numeric address in `host`) and `port`.
public func loopbackAddress(host: String = "127.0.0.1", port: UInt16) throws -> IPEndpoint {
    switch host {
    case "127.0.0.1": return .loopback(ipv6: false, port: port)
    case "::1": return .loopback(ipv6: true, port: port)
    default:
        guard let address = try IPEndpoint.resolve(host: host, port: port).first else {
            throw TestFailure("\(host) has no address")
        }
        return address
    }
}

/// A blocking TCP socket connected to `host`:`port`, whose connect, sends and blocking reads each
/// give up after `timeout`. The caller closes it.
/// - Throws: `LibeventError.callFailed(function: "connect", errno:)`: `ECONNREFUSED` when nothing
///   listens, `EINPROGRESS` when the connect timed out.
public func connectLoopback(port: UInt16, host: String = "127.0.0.1", timeout: Duration = .seconds(10)) throws -> Int32 {
    let address = try loopbackAddress(host: host, port: port)
    let fd = try libeventCall { () throws(SystemError) in
        try SystemCalls.openSocket(domain: address.isIPv6 ? AF_INET6 : AF_INET, type: SocketKind.stream)
    }
    setTimeouts(fd, timeout)
    do throws(SystemError) {
        try SystemCalls.systemCall("connect") { address.withSockAddr { connect(fd, $0, $1) } }
    } catch {
        try? SystemCalls.closeDescriptor(fd)  // already failing: the connect's errno is the one to report
        throw LibeventError(error)
    }
    return fd
}

/// Tries to connect to `host`:`port`: `nil` if it connected (the connection is closed again at
/// once), else the errno (`ECONNREFUSED` when nothing listens; `EINVAL` for a failure that
/// carried none, such as an unresolvable host).
public func connectErrno(port: UInt16, host: String = "127.0.0.1", timeout: Duration = .seconds(10)) -> Errno? {
    do {
        try SystemCalls.closeDescriptor(try connectLoopback(port: port, host: host, timeout: timeout))
        return nil
    } catch let error as SystemError {
        return error.errno
    } catch LibeventError.callFailed(_, let code) {
        return code ?? .invalidArgument
    } catch {
        return .invalidArgument
    }
}

/// Runs `body` and rethrows its ``SystemError`` as the `LibeventError.callFailed` these helpers
/// promise, so that a test can match one error type.
func libeventCall<Value>(_ body: () throws(SystemError) -> Value) throws(LibeventError) -> Value {
    do throws(SystemError) {
        return try body()
    } catch {
        throw LibeventError(error)
    }
}

/// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO` (which also bounds a blocking `connect`) on `fd`.
public func setTimeouts(_ fd: Int32, _ timeout: Duration) {
    let interval = timeout.timerInterval
    var tv = timeval(tv_sec: .init(interval.seconds), tv_usec: .init(interval.microseconds))
    // Ignored: setsockopt fails only for a bad descriptor, which the next call on it reports.
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
}

/// Sends every byte of `bytes` on a blocking socket, without raising `SIGPIPE`.
/// - Throws: `LibeventError.callFailed(function: "send", errno:)`.
public func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = try libeventCall { () throws(SystemError) in
            try SystemCalls.systemCall("send") { bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, SendFlags.noSignal) } }
        }
        offset += n
    }
}

/// Sends all of `text`, as UTF-8, on a blocking socket.
public func sendAll(_ fd: Int32, _ text: String) throws {
    try sendAll(fd, Array(text.utf8))
}

/// Waits until `fd` is readable or `deadline` passes, then reads once: the bytes, or how the
/// stream ended (``StreamEnd/timedOut`` at the deadline). Blocks the calling thread.
public func receive(_ fd: Int32, until deadline: ContinuousClock.Instant) -> Result<[UInt8], StreamEnd> {
    while true {
        let remaining = deadline - .now
        guard remaining > .zero else { return .failure(.timedOut) }
        let milliseconds = Int32(clamping: remaining.wholeMilliseconds)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        switch SystemCalls.valueOrErrno({ poll(&pfd, 1, max(milliseconds, 1)) }) {
        case .success(0): continue  // the loop checks the deadline
        case .success: break
        case .failure(let code): return .failure(.failed(code))
        }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        switch SystemCalls.valueOrErrno({ recv(fd, &chunk, chunk.count, SendFlags.dontWait) }) {
        case .success(0): return .failure(.closed)
        case .success(let n): return .success(Array(chunk[0..<n]))
        case .failure(.wouldBlock): continue
        case .failure(.connectionReset): return .failure(.reset)
        case .failure(let code): return .failure(.failed(code))
        }
    }
}

/// One request over a fresh loopback connection: sends `request`, reads until the server closes
/// (or `timeout` passes), and returns everything read as text.
/// - Throws: a connect or send failure, or ``TestFailure`` when the server neither closed nor
///   reset the connection within `timeout`.
public func rawExchange(port: UInt16, host: String = "127.0.0.1", _ request: String,
                        timeout: Duration = .seconds(10)) throws -> String {
    let fd = try connectLoopback(port: port, host: host, timeout: timeout)
    defer { try? SystemCalls.closeDescriptor(fd) }  // only EBADF could fail, and fd is ours
    try sendAll(fd, request)
    let deadline = ContinuousClock.now + timeout
    var received: [UInt8] = []
    while true {
        switch receive(fd, until: deadline) {
        case .success(let bytes): received += bytes
        case .failure(.closed), .failure(.reset): return String(decoding: received, as: UTF8.self)
        case .failure(let end):
            throw TestFailure("\(host):\(port) \(end) after \(timeout); got \(String(decoding: received, as: UTF8.self).debugDescription)")
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0). Another
/// process may take it before the caller binds it: callers that can should bind port 0 instead.
public func freeLoopbackPort() throws -> UInt16 {
    try LoopbackListener(backlog: nil).address.port
}
