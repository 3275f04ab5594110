#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Libevent

/// A TCP socket bound to a loopback address and a port the kernel picks, listening unless told
/// otherwise; closed in `deinit`. Tests play the server side with it, one blocking call at a time.
///
/// Owns its descriptor; not thread-safe (one test thread uses it).
public final class LoopbackListener {
    /// The listening descriptor.
    public let fd: Int32
    /// Where it listens: `127.0.0.1` or `::1` and the port the kernel picked.
    public let address: SocketAddress

    /// Binds `127.0.0.1` (or `::1` with `ipv6`) on a free port and listens with `backlog`
    /// (`nil`: bound only, not listening, to reserve a port number).
    /// - Throws: `LibeventError.callFailed(function: "bind", ...)` when the address is not
    ///   available (no `::1` on this machine), or another socket-call failure.
    public init(ipv6: Bool = false, backlog: Int32? = 16) throws {
        let wanted = SocketAddress.loopback(ipv6: ipv6, port: 0)
        #if canImport(Glibc)
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0)
        #endif
        try check(fd, "socket")
        do {
            try check(wanted.withSockAddr { bind(fd, $0, $1) }, "bind")
            if let backlog { try check(listen(fd, backlog), "listen") }
            address = try SocketAddress.local(of: fd)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Accepts the next connection, waiting at most `timeout`; reads from the accepted socket
    /// block for at most `timeout` too. The caller closes it.
    /// - Throws: ``TestFailure`` when no connection came in time, or the `accept` failure.
    public func accept(timeout: Duration = .seconds(1)) throws -> Int32 {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let (seconds, attoseconds) = timeout.components
        let ready = poll(&pfd, 1, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        guard ready > 0 else { throw TestFailure("no connection to \(address) within \(timeout)") }
        #if canImport(Glibc)
        let server = Glibc.accept(fd, nil, nil)
        #else
        let server = Darwin.accept(fd, nil, nil)
        #endif
        try check(server, "accept")
        setTimeouts(server, timeout)
        return server
    }
}
