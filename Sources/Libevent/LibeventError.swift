#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of libevent or of a socket call beneath it, turned into words a user understands.
///
/// Every raw C result in this module passes through ``check(_:_:)`` or ``nonNull(_:_:)``, the one
/// place a C failure becomes a Swift error.
public enum LibeventError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A C function that allocates (`event_base_new`, `evhttp_new`, `event_new`, ...) returned `NULL`.
    case allocationFailed(function: String)
    /// A C function returned `-1`. `errno` is the C error that came with it, when there was one.
    case callFailed(function: String, errno: Int32?)
    /// A host name did not resolve to any address (`getaddrinfo`).
    case addressResolution(host: String, message: String)
    /// Listening on `address` failed (`socket`, `bind` or `listen` inside `evconnlistener_new_bind`).
    case bind(address: String, errno: Int32)

    public var description: String {
        switch self {
        case .allocationFailed(let function):
            return "\(function) failed: out of memory or unsupported configuration"
        case .callFailed(let function, let errno):
            guard let errno else { return "\(function) failed" }
            return "\(function) failed: \(errnoDescription(errno))"
        case .addressResolution(let host, let message):
            return "cannot resolve host \"\(host)\": \(message)"
        case .bind(let address, let errno):
            return "cannot listen on \(address): \(errnoDescription(errno))"
        }
    }
}

/// `strerror` text plus the symbolic name users search for, e.g. `Address already in use (EADDRINUSE)`.
public func errnoDescription(_ code: Int32) -> String {
    let text = String(cString: strerror(code))
    let name = errnoName(code)
    return name.hasPrefix("errno_") ? "\(text) (errno \(code))" : "\(text) (\(name))"
}

/// The symbolic name of an errno, as reports count failures: `ECONNREFUSED`, `EMFILE`.
public func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        ECONNREFUSED: "ECONNREFUSED", ECONNRESET: "ECONNRESET", ECONNABORTED: "ECONNABORTED",
        ETIMEDOUT: "ETIMEDOUT", EMFILE: "EMFILE", ENFILE: "ENFILE", EADDRNOTAVAIL: "EADDRNOTAVAIL",
        EADDRINUSE: "EADDRINUSE", ENOBUFS: "ENOBUFS", ENOMEM: "ENOMEM", EPIPE: "EPIPE",
        EHOSTUNREACH: "EHOSTUNREACH", ENETUNREACH: "ENETUNREACH", ENETDOWN: "ENETDOWN",
        EAGAIN: "EAGAIN", EINVAL: "EINVAL", EACCES: "EACCES", EPERM: "EPERM",
        EAFNOSUPPORT: "EAFNOSUPPORT", ENOTCONN: "ENOTCONN", EMSGSIZE: "EMSGSIZE",
    ]
    return names[code] ?? "errno_\(code)"
}

/// Turns a C `int` result into a thrown error when it is negative, reading `errno` at once.
@inline(__always)
public func check(_ result: Int32, _ function: StaticString) throws(LibeventError) {
    if result < 0 {
        let code = errno
        throw .callFailed(function: "\(function)", errno: code == 0 ? nil : code)
    }
}

/// Turns a `NULL` from an allocating C function into a thrown error.
@inline(__always)
func nonNull<T>(_ pointer: T?, _ function: StaticString) throws(LibeventError) -> T {
    guard let pointer else { throw .allocationFailed(function: "\(function)") }
    return pointer
}
