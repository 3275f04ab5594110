public import EventHTTPSystem

/// A failure of libevent or of a socket call beneath it, turned into words a user understands.
///
/// Where the raw C results of this module go:
/// - a libevent result whose failure the caller must hear of passes through ``check(_:_:)``
///   (`int`) or ``nonNull(_:_:)`` (allocations) and is thrown;
/// - OS calls pass through EventHTTPSystem's `systemCall` (or `valueOrErrno`) and come here as a
///   ``SystemError`` (``init(_:)``);
/// - every other result is either tested at the call, with its own failure path (a read
///   deadline that cannot be armed closes the connection; a listener that cannot be re-enabled
///   stays paused and is retried), or dropped with `_ =` and a comment saying why it may be:
///   the call cannot fail there (`evbuffer_freeze` always returns 0), its `-1` is no error
///   (`evhttp_remove_header`: no such header), or the only failure is out of memory and its
///   effect is stated (a header left out).
public enum LibeventError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A C function that allocates (`event_base_new`, `evhttp_new`, ...) returned `NULL`.
    case allocationFailed(function: String)
    /// A C function returned `-1`. `errno` is the C error that came with it, when there was one.
    case callFailed(function: String, errno: Errno?)
    /// A host name did not resolve to any address (`getaddrinfo`).
    case addressResolution(host: String, message: String)
    /// Listening on `address` failed (`socket`, `bind` or `listen` inside `evconnlistener_new_bind`).
    case bind(address: String, errno: Errno)

    /// An OS call's failure as ``callFailed(function:errno:)-enum.case``.
    public init(_ error: SystemError) {
        self = .callFailed(function: error.call, errno: error.errno)
    }

    /// One line for logs and terminals, e.g. `cannot listen on 127.0.0.1:8080: Address already in use (EADDRINUSE)`.
    public var description: String {
        switch self {
        case .allocationFailed(let function):
            return "\(function) failed: out of memory or unsupported configuration"
        case .callFailed(let function, let errno):
            guard let errno else { return "\(function) failed" }
            return "\(function) failed: \(errno)"
        case .addressResolution(let host, let message):
            return "cannot resolve host \"\(host)\": \(message)"
        case .bind(let address, let errno):
            return "cannot listen on \(address): \(errno)"
        }
    }
}

/// Turns a libevent `int` result into a thrown error when it is negative, reading `errno` at once.
/// For libevent's calls only; OS calls go through EventHTTPSystem's `systemCall`.
@inline(__always)
package func check(_ result: Int32, _ function: StaticString) throws(LibeventError) {
    if result < 0 {
        let code = Errno.current
        throw .callFailed(function: "\(function)", errno: code.rawValue == 0 ? nil : code)
    }
}

/// Turns a `NULL` from an allocating libevent function into a thrown error.
@inline(__always)
func nonNull<T>(_ pointer: T?, _ function: StaticString) throws(LibeventError) -> T {
    guard let pointer else { throw .allocationFailed(function: "\(function)") }
    return pointer
}
