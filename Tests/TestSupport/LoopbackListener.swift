import GreetdRules
import EventHTTPSystem
import EventHTTPCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP socket bound to a loopback address and a port the kernel picks, listening unless told
/// otherwise; closed in `deinit`. Tests play the server side with it, one blocking call at a time.
///
/// Owns its descriptor; not thread-safe (one test thread uses it).
public final class LoopbackListener {
    /// The listening descriptor.
    public let fd: Int32
    /// Where it listens: `127.0.0.1` or `::1` and the port the kernel picked.
    public let address: IPEndpoint

    /// Binds `127.0.0.1` (or `::1` with `ipv6`) on a free port and listens with `backlog`
    /// (`nil`: bound only, not listening, to reserve a port number).
    /// - Throws: `LibeventError.callFailed(function: "bind", ...)` when the address is not
    ///   available (no `::1` on this machine), or another socket-call failure.
    public init(ipv6: Bool = false, backlog: Int32? = 16) throws {
        let wanted = IPEndpoint.loopback(ipv6: ipv6, port: 0)
        let fd = try libeventCall { () throws(SystemError) in
            try SystemCalls.openSocket(domain: ipv6 ? AF_INET6 : AF_INET, type: SocketKind.stream)
        }
        do {
            try libeventCall { () throws(SystemError) in
                try SystemCalls.systemCall("bind") { wanted.withSockAddr { bind(fd, $0, $1) } }
                if let backlog { try SystemCalls.systemCall("listen") { listen(fd, backlog) } }
            }
            address = try IPEndpoint.local(of: fd)
        } catch {
            try? SystemCalls.closeDescriptor(fd)  // already failing: the first error is the one to report
            throw error
        }
        self.fd = fd
    }

    deinit {
        // Ignored: only EBADF could fail, and the descriptor is ours until now.
        try? SystemCalls.closeDescriptor(fd)
    }

    /// Accepts the next connection, waiting at most `timeout`; reads from the accepted socket
    /// block for at most `timeout` too. The caller closes it.
    /// - Throws: ``TestFailure`` when no connection came in time, or the `accept` failure.
    public func accept(timeout: Duration = .seconds(1)) throws -> Int32 {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = try libeventCall { () throws(SystemError) in
            try SystemCalls.systemCall("poll") { poll(&pfd, 1, Int32(clamping: timeout.wholeMilliseconds)) }
        }
        guard ready > 0 else { throw TestFailure("no connection to \(address) within \(timeout)") }
        let server = try libeventCall { () throws(SystemError) in
            try SystemCalls.systemCall("accept") { Glibc.accept(fd, nil, nil) }
        }
        setTimeouts(server, timeout)
        return server
    }
}
