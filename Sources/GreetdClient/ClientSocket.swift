import EventHTTPSystem
import EventHTTPCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A client TCP connection for load generators and tests: a non-blocking connect to an IPv4 or
/// IPv6 ``IPEndpoint``, one request out, the response bytes in, and an abort in one of the
/// three ways clients give up (``ClientAbort``).
///
/// ## States
/// `connecting` → `open` → (`halfClosed` after ``abort(_:)`` with ``ClientAbort/half``) → `closed`.
/// Readiness comes from two ``Event``s on the descriptor: a one-shot write event (connect
/// completion, then flushing what ``send(_:)`` could not write at once) and a persistent read
/// event, armed once connected.
///
/// ## Ownership
/// The socket owns its descriptor and is the only code that closes it: exactly once, in
/// ``close()``, in ``abort(_:)``, or when the stream ends or fails (the socket closes itself before
/// it reports ``ClientSocketEvent/closedByPeer`` or ``ClientSocketEvent/failed(_:)``). Its events
/// are freed before the descriptor is closed. The owner must close the socket before dropping it:
/// `deinit` asserts that it is closed (a leak is loud in debug builds) and closes it in release.
/// The delegate is held weakly; the usual shape is an owner that is its socket's delegate.
///
/// Threading: loop-confined to its ``EventBase``. Create, use and drop it on the loop thread.
public final class ClientSocket: EventTarget {
    // not Sendable: loop-confined, like every libevent wrapper.

    /// Where a socket is in its life.
    public enum State: Equatable, Sendable {
        /// The connect is in progress.
        case connecting
        /// Connected: it may send, and reads whatever arrives.
        case open
        /// Our sending side is shut (``ClientAbort/half``); it still reads until the server closes.
        case halfClosed
        /// The descriptor is closed; nothing more will be reported.
        case closed
    }

    /// The peer this socket connects to.
    public let remote: IPEndpoint
    /// Where the socket is in its life.
    public private(set) var state: State = .closed
    /// Everything received, parsed as an HTTP/1.x response.
    public private(set) var response = HTTPResponseBuffer()
    /// Largest response kept; past it the socket fails with `EMSGSIZE`.
    public var maxResponseBytes = 4 << 20
    /// Told about connects, sends, received bytes and the end of the stream.
    public weak var delegate: (any ClientSocketDelegate)?

    private var fd: Int32 = -1
    /// Strong, as an ``Event`` holds its base: `deinit` still checks the thread through it.
    private let base: EventBase
    /// Connect completion, then flushing `output`. One-shot, re-armed as needed.
    private var writeEvent: Event?
    /// Persistent while open or half-closed.
    private var readEvent: Event?
    /// Bytes ``send(_:)`` could not write at once.
    private var output: [UInt8] = []

    private static let writeTag = 0, readTag = 1

    /// Opens a non-blocking TCP socket and starts connecting to `address`; the outcome is
    /// reported as ``ClientSocketEvent/connected`` or ``ClientSocketEvent/failed(_:)``, never from
    /// inside this initialiser.
    /// - Parameters:
    ///   - timeout: how long the connect may take; past it, `failed` with `ETIMEDOUT`. `nil`: the
    ///     kernel's own limit (minutes).
    /// - Throws: ``LibeventError/callFailed(function:errno:)`` when the socket cannot be made
    ///   (`socket`: `EMFILE`, `ENFILE`) or the connect fails at once (`connect`: `EADDRNOTAVAIL`,
    ///   `ENETUNREACH`, sometimes `ECONNREFUSED`). Nothing is left open after a throw.
    public init(connectingTo address: IPEndpoint, base: EventBase, timeout: Duration? = nil,
                delegate: (any ClientSocketDelegate)?) throws(LibeventError) {
        base.thread.preconditionOnThread()
        self.remote = address
        self.base = base
        self.delegate = delegate
        let descriptor: Int32
        do throws(SystemError) {
            descriptor = try SystemCalls.openSocket(domain: address.isIPv6 ? AF_INET6 : AF_INET, type: SocketKind.stream, nonBlocking: true)
        } catch {
            throw LibeventError(error)
        }
        fd = descriptor
        state = .connecting
        do throws(LibeventError) {
            let connected = SystemCalls.valueOrErrno { address.withSockAddr { connect(descriptor, $0, $1) } }
            if case .failure(let code) = connected, code != .inProgress {
                throw .callFailed(function: "connect", errno: code)
            }
            // Even an immediate success goes through the write event, so that the outcome is
            // always reported from the loop, never from here.
            let event = try Event(base: base, fd: descriptor, flags: [.write], target: self, tag: Self.writeTag)
            try event.add(timeout: timeout)
            writeEvent = event
        } catch {
            close()
            throw error
        }
    }

    deinit {
        base.thread.preconditionOnThread()
        assert(fd < 0, "leak of open ClientSocket to \(remote)")
        close()
    }

    /// Sends `bytes` (a request). What the kernel does not take at once is queued and written
    /// when the socket is writable, and ``ClientSocketEvent/sent`` reports when the last of it
    /// has left.
    /// - Returns: `true` if every byte left now (no `sent` will follow), `false` if some were queued.
    /// - Throws: `callFailed(function: "send", ...)`: `ENOTCONN` unless ``State/open``, or the
    ///   kernel's error (`EPIPE`, `ECONNRESET`), after which the socket is closed.
    @discardableResult
    public func send(_ bytes: [UInt8]) throws(LibeventError) -> Bool {
        base.thread.preconditionOnThread()
        guard state == .open else { throw .callFailed(function: "send", errno: .notConnected) }
        output.append(contentsOf: bytes)
        if output.count > bytes.count { return false }  // a flush is already waiting
        do throws(LibeventError) {
            try flush()
        } catch {
            close()
            throw error
        }
        return output.isEmpty
    }

    /// Reads whatever has arrived without waiting, as the read event would, and reports it to
    /// the delegate before returning (``ClientSocketEvent/received``, then `closedByPeer` or
    /// `failed` if the stream ended). Useful right before an abort, to see a response that is
    /// already in the kernel's buffer.
    public func receiveNow() {
        base.thread.preconditionOnThread()
        guard state == .open || state == .halfClosed else { return }
        readAndReport()
    }

    /// Gives up the way `style` says. ``ClientAbort/fin`` and ``ClientAbort/rst`` close the socket
    /// at once; ``ClientAbort/half`` shuts the sending side and keeps reading until the server
    /// closes, which is reported as ``ClientSocketEvent/closedByPeer`` (only an open socket can be
    /// half-closed; any other is simply closed). Queued, unsent bytes are dropped.
    public func abort(_ style: ClientAbort) {
        base.thread.preconditionOnThread()
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
            guard state == .open else {
                close()
                return
            }
            output = []
            writeEvent = nil
            if case .failure = SystemCalls.valueOrErrno({ shutdown(fd, Int32(SHUT_WR)) }) {
                close()
                return
            }
            state = .halfClosed
        }
    }

    /// Frees the events, then closes the descriptor (a FIN). Safe to call more than once.
    public func close() {
        base.thread.preconditionOnThread()
        // Events first: libevent must stop watching a descriptor before it is closed and reused.
        readEvent = nil
        writeEvent = nil
        output = []
        guard fd >= 0 else { return }
        // Ignored: the descriptor is released whatever close reports (EBADF would be a bug here,
        // EIO cannot come from a socket), and a client that gives up has nothing left to do.
        try? SystemCalls.closeDescriptor(fd)
        fd = -1
        state = .closed
    }

    /// Called by the socket's own events on the loop thread; not for other callers.
    public func eventFired(tag: Int, flags: EventFlags) {
        switch (tag, state) {
        case (Self.writeTag, .connecting):
            connectFinished(timedOut: flags.contains(.timeout))
        case (Self.writeTag, .open):
            do throws(LibeventError) {
                try flush()
                if output.isEmpty { report(.sent) }
            } catch {
                fail(error)
            }
        case (Self.readTag, .open), (Self.readTag, .halfClosed):
            readAndReport()
        default:
            break
        }
    }

    private func connectFinished(timedOut: Bool) {
        if timedOut {
            fail(.callFailed(function: "connect", errno: .timedOut))
            return
        }
        do throws(LibeventError) {
            let code: Int32
            do throws(SystemError) {
                code = try SystemCalls.socketOption(fd, level: SOL_SOCKET, option: SO_ERROR)
            } catch {
                throw LibeventError(error)
            }
            if code != 0 { throw LibeventError.callFailed(function: "connect", errno: Errno(code)) }
            let read = try Event(base: base, fd: fd, flags: [.read, .persist], target: self, tag: Self.readTag)
            try read.add()
            readEvent = read
        } catch {
            fail(error)
            return
        }
        state = .open
        report(.connected)
    }

    /// Writes as much of `output` as the kernel takes; arms the write event for the rest.
    private func flush() throws(LibeventError) {
        while !output.isEmpty {
            let sent = output.withUnsafeBytes { bytes in
                Result { () throws(SystemError) in
                    // noSignal: a write to a reset connection must fail with EPIPE, not raise SIGPIPE.
                    try SystemCalls.nonBlockingSystemCall("send") {
                        Glibc.send(fd, bytes.baseAddress, bytes.count, SendFlags.noSignal)
                    }
                }
            }
            switch sent {
            case .success(.processed(let written)):
                output.removeFirst(written)
            case .success(.wouldBlock):
                try writeEvent?.add()
                return
            case .failure(let error):
                throw LibeventError(error)
            }
        }
    }

    private enum StreamEnd {
        case closedByPeer
        case failed(LibeventError)
    }

    /// Reads until the kernel has nothing more (or the stream ends), reports new bytes, then
    /// the end if there was one.
    private func readAndReport() {
        var receivedBytes = false
        var end: StreamEnd?
        reading: for _ in 0..<64 {
            let received = withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 1) { buffer in
                let result = Result { () throws(SystemError) in
                    try SystemCalls.nonBlockingSystemCall("recv") { recv(fd, buffer.baseAddress, buffer.count, SendFlags.dontWait) }
                }
                if case .success(.processed(let count)) = result, count > 0 {
                    response.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                }
                return result
            }
            switch received {
            case .success(.processed(0)):
                response.markEndOfStream()
                end = .closedByPeer
                break reading
            case .success(.processed):
                receivedBytes = true
                if response.bytes.count > maxResponseBytes {
                    end = .failed(.callFailed(function: "recv", errno: .messageTooLong))
                    break reading
                }
            case .success(.wouldBlock):
                break reading
            case .failure(let error):
                end = .failed(LibeventError(error))
                break reading
            }
        }
        if let end {
            // Closed before the delegate hears anything, so that it sees the final state.
            close()
            if receivedBytes { report(.received) }
            switch end {
            case .closedByPeer: report(.closedByPeer)
            case .failed(let error): report(.failed(error))
            }
        } else if receivedBytes {
            report(.received)
        }
    }

    private func fail(_ error: LibeventError) {
        close()
        report(.failed(error))
    }

    private func report(_ event: ClientSocketEvent) {
        delegate?.clientSocket(self, didReport: event)
    }
}
