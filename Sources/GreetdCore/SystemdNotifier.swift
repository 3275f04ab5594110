import EventHTTPSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// systemd's readiness protocol (`sd_notify`): one datagram per state change to the Unix socket
/// named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
///
/// greetd sends `READY=1` once every worker listens and `STOPPING=1` when it starts draining,
/// so a `Type=notify` unit knows when it is up and when it is going down.
///
/// A value type: ``send(_:)`` may be called from any thread; each call uses its own socket.
public struct SystemdNotifier: Sendable {
    /// The socket path; abstract names start with a NUL byte here.
    let path: [UInt8]

    /// A notifier for `$NOTIFY_SOCKET`, or `nil` when greetd does not run under a notify-aware
    /// supervisor.
    public init?(environment: [String: String]) {
        guard let value = environment["NOTIFY_SOCKET"], !value.isEmpty else { return nil }
        var bytes = Array(value.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        path = bytes
    }

    /// Sends `state` (e.g. `READY=1\nSTATUS=...`).
    /// - Returns: whether the datagram went out; failures are not fatal to greetd.
    @discardableResult
    public func send(_ state: String) -> Bool {
        (try? notify(state)) != nil
    }

    /// Sends `state`, reporting why it could not.
    /// - Throws: ``SystemError`` from `socket` or `sendto` (`ENOENT`, `ECONNREFUSED` when the
    ///   supervisor's socket is gone).
    public func notify(_ state: String) throws(SystemError) {
        let fd = try SystemCalls.openSocket(domain: AF_UNIX, type: SocketKind.datagram)
        // close on a datagram socket we just opened cannot fail but with EBADF, a bug.
        defer { try? SystemCalls.closeDescriptor(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let bytes = Array(state.utf8)
        try withUnsafePointer(to: &address) { (pointer) throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (socketAddress) throws(SystemError) in
                _ = try SystemCalls.systemCall("sendto(\(String(decoding: path.map { $0 == 0 ? UInt8(ascii: "@") : $0 }, as: UTF8.self)))") {
                    sendto(fd, bytes, bytes.count, SendFlags.noSignal, socketAddress, length)
                }
            }
        }
    }
}
