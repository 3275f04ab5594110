#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// A C error number (`errno`), with the name and message the C library gives it.
///
/// Every value has a readable ``name`` and ``message``, not only the ones greetd expects:
/// both come from the C library (`strerrorname_np` and `strerror`), never from a table kept here.
/// The static members below are the values greetd's code tests for; any other is `Errno(code)`.
///
/// A value type: usable from any thread.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    /// The C value, e.g. `98` for `EADDRINUSE` on Linux.
    public let rawValue: Int32

    /// Wraps a C error number.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Wraps a C error number: `Errno(EHOSTUNREACH)`.
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno` now. Read it straight after the failing call: almost any other
    /// call, Swift's runtime included, may overwrite it.
    public static var current: Errno {
        get { Errno(errno) }
        set { errno = newValue.rawValue }
    }

    /// The symbolic name users search for, e.g. `EADDRINUSE`; `errno 200` for a value the C
    /// library has no name for (and for every value on Darwin, which has no `strerrorname_np`).
    public var name: String { cLibraryErrnoName(rawValue) ?? "errno \(rawValue)" }

    /// The C library's sentence (`strerror`), e.g. `Address already in use`.
    ///
    /// glibc returns a constant string for known values and a thread-local buffer for the rest,
    /// so this is safe from any thread; it is copied at once either way.
    public var message: String { String(cString: strerror(rawValue)) }

    /// `Address already in use (EADDRINUSE)`; `Unknown error 200 (errno 200)` for an unnamed value.
    public var description: String { "\(message) (\(name))" }
}

extension Errno {
    /// The call was interrupted by a signal before it did anything. The corresponding C error is `EINTR`.
    public static let interrupted = Errno(EINTR)
    /// The call would block on a non-blocking descriptor. The corresponding C error is `EAGAIN`,
    /// which is `EWOULDBLOCK` on Linux and Darwin.
    public static let wouldBlock = Errno(EAGAIN)
    /// A non-blocking `connect` has started. The corresponding C error is `EINPROGRESS`.
    public static let inProgress = Errno(EINPROGRESS)
    /// A descriptor was not open. The corresponding C error is `EBADF`.
    public static let badFileDescriptor = Errno(EBADF)
    /// An argument was invalid. The corresponding C error is `EINVAL`.
    public static let invalidArgument = Errno(EINVAL)
    /// The process has no descriptor left. The corresponding C error is `EMFILE`.
    public static let tooManyOpenFiles = Errno(EMFILE)
    /// The system has no descriptor left. The corresponding C error is `ENFILE`.
    public static let tooManyOpenFilesInSystem = Errno(ENFILE)
    /// Out of memory. The corresponding C error is `ENOMEM`.
    public static let noMemory = Errno(ENOMEM)
    /// Out of socket buffer space. The corresponding C error is `ENOBUFS`.
    public static let noBufferSpace = Errno(ENOBUFS)
    /// The address is already bound. The corresponding C error is `EADDRINUSE`.
    public static let addressInUse = Errno(EADDRINUSE)
    /// The address is not on this machine, or no ephemeral port is left. The corresponding C
    /// error is `EADDRNOTAVAIL`.
    public static let addressNotAvailable = Errno(EADDRNOTAVAIL)
    /// The address family is not supported (IPv6 on a host without it). The corresponding C error
    /// is `EAFNOSUPPORT`.
    public static let addressFamilyNotSupported = Errno(EAFNOSUPPORT)
    /// Nothing listens on the port. The corresponding C error is `ECONNREFUSED`.
    public static let connectionRefused = Errno(ECONNREFUSED)
    /// The peer reset the connection. The corresponding C error is `ECONNRESET`.
    public static let connectionReset = Errno(ECONNRESET)
    /// A write to a connection whose peer has gone. The corresponding C error is `EPIPE`.
    public static let brokenPipe = Errno(EPIPE)
    /// The socket is not connected. The corresponding C error is `ENOTCONN`.
    public static let notConnected = Errno(ENOTCONN)
    /// The operation timed out. The corresponding C error is `ETIMEDOUT`.
    public static let timedOut = Errno(ETIMEDOUT)
    /// A message was too long for its buffer. The corresponding C error is `EMSGSIZE`.
    public static let messageTooLong = Errno(EMSGSIZE)
}
