/// An operating-system call that failed: which call, and the C error it gave.
///
/// The ``description`` is for people: `bind(127.0.0.1:8080): Address already in use (EADDRINUSE)`.
/// A value type: usable from any thread.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call and, where it helps, what it was called on: `bind(127.0.0.1:8080)`, `read`.
    public let call: String
    /// The C error the call failed with.
    public let errno: Errno

    /// A failure of `call` with `errno`.
    public init(call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// `call: message (NAME)`.
    public var description: String { "\(call): \(errno)" }
}
