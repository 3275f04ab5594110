import GreetdRules
import GreetdSystem
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
        let fd = try libeventCall { () throws(SystemError) in
            try openSocket(domain: ipv6 ? AF_INET6 : AF_INET, type: SocketKind.stream)
        }
        do {
            try libeventCall { () throws(SystemError) in
                try systemCall("bind") { wanted.withSockAddr { bind(fd, $0, $1) } }
                if let backlog { try systemCall("listen") { listen(fd, backlog) } }
            }
            address = try SocketAddress.local(of: fd)
        } catch {
            try? closeDescriptor(fd)  // already failing: the first error is the one to report
            throw error
        }
        self.fd = fd
    }

    deinit {
        // Ignored: only EBADF could fail, and the descriptor is ours until now.
        try? closeDescriptor(fd)
    }

    /// Accepts the next connection, waiting at most `timeout`; reads from the accepted socket
    /// block for at most `timeout` too. The caller closes it.
    /// - Throws: ``TestFailure`` when no connection came in time, or the `accept` failure.
    public func accept(timeout: Duration = .seconds(1)) throws -> Int32 {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = try libeventCall { () throws(SystemError) in
            try systemCall("poll") { poll(&pfd, 1, Int32(clamping: timeout.wholeMilliseconds)) }
        }
        guard ready > 0 else { throw TestFailure("no connection to \(address) within \(timeout)") }
        let server = try libeventCall { () throws(SystemError) in
            try systemCall("accept") { GreetdSystem.accept(fd, nil, nil) }
        }
        setTimeouts(server, timeout)
        return server
    }
}
