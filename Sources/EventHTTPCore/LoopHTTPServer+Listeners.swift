import CLibevent
import EventHTTPSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Listening: binding addresses, and pausing a listener whose accept fails.
extension LoopHTTPServer {
    /// Listens on every address `host` resolves to, all on one port.
    ///
    /// `localhost` always means both loopback addresses, `127.0.0.1` and `::1`, even where the
    /// resolver (an `/etc/hosts` without `::1 localhost`) lists only one; the one it does not list
    /// is skipped if the machine lacks it (no IPv6).
    ///
    /// `port` 0 picks a free port on the first address and reuses it for the others. Sockets get
    /// `SO_REUSEADDR`, IPv6 ones `IPV6_V6ONLY`, except the IPv6 wildcard `::`: it is dual stack
    /// (`IPV6_V6ONLY` off, as Go's `:port`), so `--host ::` serves IPv4 clients too. A bracketed
    /// literal (`[::1]`) is read without its brackets.
    /// - Returns: the bound addresses, with real ports.
    /// - Throws: ``LibeventError/bind(address:errno:)`` naming the address that failed; nothing
    ///   stays bound after a throw.
    @discardableResult
    public func bind(host: String, port: UInt16) throws(LibeventError) -> [IPEndpoint] {
        base.thread.preconditionOnThread()
        let (resolved, optional) = try Self.listenAddresses(host: host, port: port)
        // With port 0 the first address picks the port; another process may hold it on the next
        // address. Try a few ports before giving up.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try bindAll(resolved, optional: optional, port: port)
            } catch let error {
                if case .bind(_, let code) = error, code == .addressInUse, port == 0, resolved.count > 1, attempt < 8 {
                    continue
                }
                throw error
            }
        }
    }

    /// The addresses `host` means, and which of them may be skipped if the machine lacks them
    /// (the loopback that `localhost` adds beyond what the resolver says).
    static func listenAddresses(host: String, port: UInt16) throws(LibeventError) -> (all: [IPEndpoint], optional: [IPEndpoint]) {
        var resolved = try IPEndpoint.resolve(host: host, port: port)
        var optional: [IPEndpoint] = []
        if host.lowercased() == "localhost" {
            for ipv6 in [false, true] {
                let loopback = IPEndpoint.loopback(ipv6: ipv6, port: port)
                if !resolved.contains(loopback) {
                    resolved.append(loopback)
                    optional.append(loopback)
                }
            }
        }
        return (resolved, optional)
    }

    /// Checks that nothing listens on `host`:`port` yet, by binding (and closing) plain sockets,
    /// without `SO_REUSEPORT`. Sockets that set it could otherwise share the port with another
    /// process without a word.
    /// - Throws: ``LibeventError/bind(address:errno:)`` naming the address in use.
    public static func checkPortIsFree(host: String, port: UInt16) throws(LibeventError) {
        let (addresses, optional) = try listenAddresses(host: host, port: port)
        for address in addresses {
            let refusal: Errno?
            do throws(SystemError) { refusal = try probeBind(address) } catch { throw LibeventError(error) }
            guard let code = refusal else { continue }
            if optional.contains(address), code == .addressNotAvailable || code == .addressFamilyNotSupported { continue }
            throw .bind(address: address.description, errno: code)
        }
    }

    private func bindAll(_ resolved: [IPEndpoint], optional: [IPEndpoint], port: UInt16) throws(LibeventError) -> [IPEndpoint] {
        guard let raw else { throw .callFailed(function: "evhttp_bind_listener (server closed)", errno: nil) }
        var bound: [(OpaquePointer, IPEndpoint)] = []
        var chosenPort = port
        do {
            for var address in resolved {
                address.port = chosenPort
                var flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE
                if address.isIPv6 { flags |= LEV_OPT_BIND_IPV6ONLY }
                if options.reusePort { flags |= LEV_OPT_REUSEABLE_PORT }
                let listener: OpaquePointer?
                var failure: Errno?
                if address.isIPv6Wildcard {
                    // libevent can turn IPV6_V6ONLY on but never off (the system default,
                    // net.ipv6.bindv6only, would decide): make this socket ourselves.
                    switch openDualStackSocket(address, reusePort: options.reusePort) {
                    case .success(let fd):
                        listener = evconnlistener_new(base.raw, nil, nil, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                      options.backlog, fd)
                        if listener == nil {
                            failure = Errno.current
                            try? SystemCalls.closeDescriptor(fd)
                        }
                    case .failure(let code):
                        listener = nil
                        failure = code
                    }
                } else {
                    listener = address.withSockAddr { sa, length in
                        evconnlistener_new_bind(base.raw, nil, nil, flags, options.backlog, sa, Int32(length))
                    }
                    if listener == nil { failure = Errno.current }
                }
                guard let listener else {
                    let code = failure ?? Errno.current
                    var template = address
                    template.port = port
                    if optional.contains(template), code == .addressNotAvailable || code == .addressFamilyNotSupported { continue }
                    throw LibeventError.bind(address: address.description, errno: code)
                }
                // evhttp takes ownership of the listener here (and frees it in evhttp_free).
                guard let socket = evhttp_bind_listener(raw, listener) else {
                    evconnlistener_free(listener)
                    throw LibeventError.allocationFailed(function: "evhttp_bind_listener")
                }
                // Without an error callback, a failing accept (EMFILE) leaves the listener armed
                // and level-triggered: the loop would spin at 100% CPU.
                evconnlistener_set_error_cb(listener, acceptErrorTrampoline)
                bound.append((socket, address))
                let local = try IPEndpoint.local(of: evconnlistener_get_fd(listener))
                bound[bound.count - 1].1 = local
                chosenPort = local.port
            }
        } catch let error as LibeventError {
            for (socket, _) in bound { evhttp_del_accept_socket(raw, socket) }
            throw error
        } catch {
            fatalError("unreachable: \(error)")
        }
        listeners += bound.map(\.0)
        addresses += bound.map(\.1)
        return bound.map(\.1)
    }

    /// `accept` failed on `listener` with `code` (out of descriptors, most often): pause that
    /// listener and try again later, 50 ms at first, doubling while errors keep coming, at most
    /// 1 s. Connections wait in the kernel's backlog meanwhile and are served once descriptors
    /// free up.
    fileprivate func acceptFailed(_ listener: OpaquePointer, _ code: Errno) {
        let now = ContinuousClock.now
        if let last = lastAcceptError, now - last < .seconds(2), acceptBackoff > .zero {
            acceptBackoff = min(acceptBackoff * 2, .seconds(1))
        } else {
            acceptBackoff = .milliseconds(50)
        }
        lastAcceptError = now
        // evconnlistener_disable is event_del, which fails only for an event with no base.
        _ = evconnlistener_disable(listener)
        if !pausedListeners.contains(listener) { pausedListeners.append(listener) }
        onAcceptError?(code, scheduleResume())
    }

    /// Arms the resume timer for ``acceptBackoff`` unless it is already armed; returns the pause.
    private func scheduleResume() -> Duration {
        guard let resumeTimer, !resumeTimer.isPending else { return acceptBackoff }
        do {
            try resumeTimer.add(timeout: acceptBackoff)
            return acceptBackoff
        } catch {
            // Out of memory for libevent's timer heap. A listener left paused would never accept
            // again: resume on the next loop turn instead (event_active allocates nothing).
            resumeTimer.activate()
            return .zero
        }
    }

    func resumeAccepting() {
        let paused = pausedListeners
        pausedListeners = []
        // evconnlistener_enable is event_add on the listening socket, which can fail (ENOMEM,
        // or epoll_ctl's ENOSPC): keep such a listener paused and try again after the backoff.
        for listener in paused where evconnlistener_enable(listener) != 0 {
            pausedListeners.append(listener)
        }
        if !pausedListeners.isEmpty { _ = scheduleResume() }
    }
}

/// HTTP servers by their `evhttp` pointer, for the listener error callback (its argument is the
/// `evhttp`). One table per thread: a server registers on its loop thread, and the callback runs
/// on that same thread, so no table is ever touched by two threads and none needs a lock.
final class LoopRegistry {
    var servers: [UnsafeMutableRawPointer: Unmanaged<LoopHTTPServer>] = [:]

    /// The calling thread's table, made on first use and released when the thread exits.
    static var current: LoopRegistry {
        if let existing = pthread_getspecific(loopRegistryKey) {
            return Unmanaged<LoopRegistry>.fromOpaque(existing).takeUnretainedValue()
        }
        let made = LoopRegistry()
        // The thread-specific slot holds one retain, released by the key's destructor.
        // pthread_setspecific fails only for an invalid key (EINVAL) or, when the thread's slot
        // table cannot grow, ENOMEM: out of memory is fatal anyway.
        let status = pthread_setspecific(loopRegistryKey, Unmanaged.passRetained(made).toOpaque())
        precondition(status == 0, "pthread_setspecific: \(Errno(status))")
        return made
    }
}

private let loopRegistryKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key) { pointer in
        if let pointer { Unmanaged<LoopRegistry>.fromOpaque(pointer).release() }
    }
    precondition(status == 0, "pthread_key_create failed")
    return key
}()

/// The C listener error callback: `accept` failed with something other than EAGAIN/EINTR.
private func acceptErrorTrampoline(_ listener: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) {
    let code = Errno.current
    guard let listener, let arg, let server = LoopRegistry.current.servers[arg] else { return }
    let target = server.takeUnretainedValue()
    target.safePoint.callback { target.acceptFailed(listener, code) }
}

/// Binds a plain socket to `address` (`SO_REUSEADDR`, and `IPV6_V6ONLY` for IPv6; no
/// `SO_REUSEPORT`) and closes it again. At file scope, where `bind` is not shadowed by
/// ``LoopHTTPServer/bind(host:port:)``.
/// - Returns: the errno `bind` failed with (`EADDRINUSE`, `EADDRNOTAVAIL`, ...), or `nil` when
///   the address is free.
/// - Throws: ``SystemError`` from `socket` or `setsockopt`.
private func probeBind(_ address: IPEndpoint) throws(SystemError) -> Errno? {
    let fd = try SystemCalls.openSocket(domain: address.isIPv6 ? AF_INET6 : AF_INET, type: SocketKind.stream)
    // A probe only: close's one possible failure, EBADF, would be a bug here, and the port is
    // released either way.
    defer { try? SystemCalls.closeDescriptor(fd) }
    try SystemCalls.setSocketOption(fd, level: SOL_SOCKET, option: SO_REUSEADDR, value: 1)
    if address.isIPv6 {
        // The wildcard `::` is bound dual stack: probe it the same way, so that an IPv4 listener
        // on the port counts as taken.
        try SystemCalls.setSocketOption(fd, level: Int32(IPPROTO_IPV6), option: IPV6_V6ONLY, value: address.isIPv6Wildcard ? 0 : 1)
    }
    switch SystemCalls.valueOrErrno({ address.withSockAddr { bind(fd, $0, $1) } }) {
    case .success: return nil
    case .failure(let code): return code
    }
}

/// A non-blocking, close-on-exec TCP socket bound to the IPv6 wildcard `address` with
/// `IPV6_V6ONLY` off (IPv4 clients arrive as `::ffff:a.b.c.d`), `SO_REUSEADDR`, `SO_KEEPALIVE`
/// and, when asked, `SO_REUSEPORT`: what `evconnlistener_new_bind` sets, less `IPV6_V6ONLY`.
/// Not yet listening (`evconnlistener_new` calls `listen`).
/// - Returns: the descriptor, or the errno of the step that failed (nothing left open).
private func openDualStackSocket(_ address: IPEndpoint, reusePort: Bool) -> Result<Int32, Errno> {
    let fd: Int32
    do throws(SystemError) {
        fd = try SystemCalls.openSocket(domain: AF_INET6, type: SocketKind.stream, nonBlocking: true)
    } catch {
        return .failure(error.errno)
    }
    do throws(SystemError) {
        try SystemCalls.setSocketOption(fd, level: SOL_SOCKET, option: SO_KEEPALIVE, value: 1)
        try SystemCalls.setSocketOption(fd, level: SOL_SOCKET, option: SO_REUSEADDR, value: 1)
        if reusePort { try SystemCalls.setSocketOption(fd, level: SOL_SOCKET, option: SO_REUSEPORT, value: 1) }
        try SystemCalls.setSocketOption(fd, level: Int32(IPPROTO_IPV6), option: IPV6_V6ONLY, value: 0)
        try SystemCalls.setNonBlocking(fd)
    } catch {
        try? SystemCalls.closeDescriptor(fd)
        return .failure(error.errno)
    }
    if case .failure(let code) = SystemCalls.valueOrErrno({ address.withSockAddr { bind(fd, $0, $1) } }) {
        try? SystemCalls.closeDescriptor(fd)
        return .failure(code)
    }
    return .success(fd)
}
