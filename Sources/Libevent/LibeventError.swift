import GreetdSystem

/// A failure of libevent or of a socket call beneath it, turned into words a user understands.
///
/// libevent's own results pass through ``check(_:_:)`` and ``nonNull(_:_:)``; OS calls pass
/// through GreetdSystem's `systemCall` and come here as a ``SystemError`` (``init(_:)``).
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
/// For libevent's calls only; OS calls go through GreetdSystem's `systemCall`.
@inline(__always)
public func check(_ result: Int32, _ function: StaticString) throws(LibeventError) {
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

// MARK: - Transitional: the Int32 spellings of errno.
//
// No code under Sources/ uses these any more; only the test that pins them
// (LibeventErrorTests.rawErrnoSpellingsMatchTheTypedOnes) does. Delete this section together
// with that test (see each overload for the replacement).

extension LibeventError {
    /// Same as the case, from a raw errno. Replace with `.callFailed(function:errno: Errno(code))`.
    public static func callFailed(function: String, errno: Int32) -> LibeventError {
        .callFailed(function: function, errno: Errno(errno))
    }

    /// Same as the case, from a raw errno. Replace with `.bind(address:errno: Errno(code))`.
    public static func bind(address: String, errno: Int32) -> LibeventError {
        .bind(address: address, errno: Errno(errno))
    }
}

/// `strerror` text plus the symbolic name users search for, e.g. `Address already in use (EADDRINUSE)`.
/// Replace with `Errno(code).description`.
public func errnoDescription(_ code: Int32) -> String { Errno(code).description }

/// Replace with `errno.description`.
public func errnoDescription(_ errno: Errno) -> String { errno.description }

/// The symbolic name of an errno: `ECONNREFUSED`, `EMFILE`. Replace with `Errno(code).name`.
public func errnoName(_ code: Int32) -> String { Errno(code).name }

/// Replace with `errno.name`.
public func errnoName(_ errno: Errno) -> String { errno.name }

/// Replace with `errno.message`.
public func strerror(_ errno: Errno) -> UnsafeMutablePointer<CChar>! { strerror(errno.rawValue) }

extension Errno {
    /// Compares with a raw C constant. Replace `code == EADDRINUSE` with `code == .addressInUse`
    /// or `code == Errno(EADDRINUSE)`.
    public static func == (lhs: Errno, rhs: Int32) -> Bool { lhs.rawValue == rhs }
    /// Replace as for `==`.
    public static func != (lhs: Errno, rhs: Int32) -> Bool { lhs.rawValue != rhs }
}

extension Sequence where Element == Int32 {
    /// Whether a list of raw C constants holds `errno`. Replace `[EMFILE, ENFILE].contains(code)`
    /// with `[Errno.tooManyOpenFiles, .tooManyOpenFilesInSystem].contains(code)`.
    public func contains(_ errno: Errno) -> Bool { contains(errno.rawValue) }
}
