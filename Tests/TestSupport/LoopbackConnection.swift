import Foundation
import GreetdClient
import EventHTTPSystem
import EventHTTPCore

/// A blocking client connection over loopback for tests: sends requests, reads whole responses
/// (keep-alive and pipelined ones in turn, parsed by `HTTPResponseBuffer`), watches the server
/// close, and aborts the ways real clients do (`ClientAbort`). Every read is bounded by a deadline.
///
/// Owns its descriptor (closed by ``close()``, ``abort(_:)`` or `deinit`).
/// `@unchecked Sendable`: it has no lock; the invariant is that one thread uses it at a time.
/// A test hands it to another thread only to wait there (``offCooperativePool(_:)``) and does not
/// touch it until that wait returns.
public final class LoopbackConnection: @unchecked Sendable {
    /// The socket; -1 once closed.
    public private(set) var fd: Int32
    /// Where it is connected.
    public let port: UInt16
    /// The bound on each read unless a call says otherwise.
    public let timeout: Duration
    /// Bytes received and not yet returned as a response.
    private var pending = HTTPResponseBuffer()

    /// Connects to `host`:`port` (`127.0.0.1` or `::1`).
    /// - Throws: `LibeventError.callFailed(function: "connect", errno:)`, e.g. `ECONNREFUSED`.
    public init(port: UInt16, host: String = "127.0.0.1", timeout: Duration = .seconds(5)) throws {
        fd = try connectLoopback(port: port, host: host, timeout: timeout)
        self.port = port
        self.timeout = timeout
    }

    deinit { close() }

    /// Sends `text` as UTF-8.
    public func send(_ text: String) throws { try sendAll(fd, Array(text.utf8)) }

    /// Sends `bytes`.
    public func send(_ bytes: [UInt8]) throws { try sendAll(fd, bytes) }

    /// Sends `GET target HTTP/1.1` with a `Host` header and `extraHeaders` (each ending in CRLF).
    public func sendGet(_ target: String = "/", extraHeaders: String = "") throws {
        try send("GET \(target) HTTP/1.1\r\nHost: test\r\n\(extraHeaders)\r\n")
    }

    /// Reads the next whole response to a `requestMethod` request (`HEAD`: headers only).
    /// Bytes after it stay for the next call.
    /// - Throws: ``TestFailure`` when the stream ends, or `timeout` passes, before the response is whole.
    public func readResponse(timeout: Duration? = nil, requestMethod: String = "GET") throws -> HTTPReply {
        if pending.isResponseToHead != (requestMethod.uppercased() == "HEAD") {
            var reparsed = HTTPResponseBuffer(requestMethod: requestMethod)
            reparsed.append(contentsOf: pending.bytes)
            if pending.endOfStream { reparsed.markEndOfStream() }
            pending = reparsed
        }
        let deadline = ContinuousClock.now + (timeout ?? self.timeout)
        while !pending.isComplete {
            guard !pending.isMalformed, !pending.endOfStream else { break }
            switch receive(fd, until: deadline) {
            case .success(let bytes): pending.append(contentsOf: bytes)
            case .failure(.closed): pending.markEndOfStream()
            case .failure(let end):
                throw TestFailure("connection \(end) before a whole response; got \(String(decoding: pending.bytes, as: UTF8.self).debugDescription)")
            }
        }
        let reply = try HTTPReply(pending)
        pending = pending.nextResponse()
        return reply
    }

    /// Reads until the server ends the stream or `timeout` passes; returns every byte not yet
    /// returned, as text, and how the stream ended.
    public func readToEnd(timeout: Duration? = nil) -> (text: String, end: StreamEnd) {
        let deadline = ContinuousClock.now + (timeout ?? self.timeout)
        var received = pending.bytes
        pending = HTTPResponseBuffer()
        while true {
            switch receive(fd, until: deadline) {
            case .success(let bytes): received += bytes
            case .failure(let end): return (String(decoding: received, as: UTF8.self), end)
            }
        }
    }

    /// Whether the server closes (or resets) the connection within `timeout`; data that arrives
    /// meanwhile is read and dropped.
    public func waitForClose(timeout: Duration? = nil) -> Bool {
        let end = readToEnd(timeout: timeout).end
        return end == .closed || end == .reset
    }

    /// Gives up the way `style` says: ``ClientAbort/fin`` and ``ClientAbort/rst`` close the
    /// socket; ``ClientAbort/half`` shuts the sending side and keeps the socket for reading.
    public func abort(_ style: ClientAbort) {
        guard fd >= 0 else { return }
        switch style {
        case .fin:
            close()
        case .rst:
            // Ignored: setsockopt fails only for a bad descriptor, and then the close below
            // is a FIN instead of a reset, which the other side survives as well.
            try? SystemCalls.setResetOnClose(fd)
            close()
        case .half:
            // Ignored: shutdown fails only on a socket that is no longer connected, and then
            // the reads that follow see the end of the stream anyway.
            _ = shutdown(fd, Int32(SHUT_WR))
        }
    }

    /// Closes the socket (a FIN). Safe to call more than once.
    public func close() {
        guard fd >= 0 else { return }
        // Ignored: only EBADF could fail, and the descriptor is ours until now.
        try? SystemCalls.closeDescriptor(fd)
        fd = -1
    }

    /// Moves the socket to a descriptor number of 2048 or more, if the open-file limit allows,
    /// so that a test holding hundreds of clients leaves the low numbers (below `FD_SETSIZE`)
    /// to servers in the same process: a `select`-backend base aborts on a descriptor past 1023.
    public func moveAboveSelectRange() {
        // A failure (EINVAL or EMFILE past the limit) leaves the socket where it is, which only
        // matters to a select-backend base.
        guard case .success(let high) = SystemCalls.valueOrErrno({ fcntl(fd, F_DUPFD_CLOEXEC, 2048) }) else { return }
        close()
        fd = high
    }
}

/// Runs `body` on a thread of its own and waits for it without holding a cooperative thread:
/// for blocking socket calls (``LoopbackConnection/readResponse(timeout:requestMethod:)``) in
/// async tests.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
