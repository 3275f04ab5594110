#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif
// The funnel every raw OS call goes through: a -1 becomes a typed error here and nowhere else,
// EINTR is retried here and nowhere else. Modelled on swift-nio's `syscall(blocking:where:_:)`
// and swift-system's `SystemCalls.valueOrErrno(retryOnInterrupt:_:)`.

/// The namespace of the funnel's calls: `SystemCalls.systemCall("bind") { bind(...) }`.
///
/// Public so that greetd and adopters that hold a raw descriptor share one `EINTR` and errno
/// rule; a namespace so that nothing here lands in a consumer's global scope.
public enum SystemCalls {}

/// What a non-blocking call did: its result, or nothing because it would have blocked.
public enum IOResult<Value> {
    /// The call completed with this value (a byte count, a descriptor, ...).
    case processed(Value)
    /// The call would have blocked (`EAGAIN`/`EWOULDBLOCK`); wait for readiness and try again.
    case wouldBlock
}

extension IOResult: Equatable where Value: Equatable {}
extension IOResult: Sendable where Value: Sendable {}

extension SystemCalls {
/// Runs `body`, a C call that returns `-1` and sets `errno` on failure, and retries it while it
/// fails with `EINTR`.
/// - Returns: the call's result, or the errno it failed with. For callers that handle some
///   errors as outcomes (a non-blocking `connect`'s `EINPROGRESS`).
@inlinable
public static func valueOrErrno<Value: FixedWidthInteger & SignedInteger>(_ body: () -> Value) -> Result<Value, Errno> {
    while true {
        let result = body()
        guard result == -1 else { return .success(result) }
        let code = Errno.current
        if code != .interrupted { return .failure(code) }
    }
}
}

extension SystemCalls {
/// Runs `body`, a C call that returns `-1` and sets `errno` on failure: retries it on `EINTR`,
/// throws any other failure as a ``SystemError`` named `call`.
///
/// `call` is only evaluated on failure, so `"bind(\(address))"` costs nothing on success.
/// - Returns: the call's result.
@inlinable
@discardableResult
public static func systemCall<Value: FixedWidthInteger & SignedInteger>(
    _ call: @autoclosure () -> String, _ body: () -> Value
) throws(SystemError) -> Value {
    switch SystemCalls.valueOrErrno(body) {
    case .success(let result): return result
    case .failure(let code): throw SystemError(call: call(), errno: code)
    }
}
}

extension SystemCalls {
/// ``SystemCalls.systemCall(_:_:)`` for a call on a non-blocking descriptor: `EAGAIN`/`EWOULDBLOCK` is an
/// outcome (``IOResult/wouldBlock``), not an error.
@inlinable
public static func nonBlockingSystemCall<Value: FixedWidthInteger & SignedInteger>(
    _ call: @autoclosure () -> String, _ body: () -> Value
) throws(SystemError) -> IOResult<Value> {
    switch SystemCalls.valueOrErrno(body) {
    case .success(let result): return .processed(result)
    // EWOULDBLOCK is EAGAIN on Linux and Darwin; compare both in case a platform differs.
    case .failure(let code) where code == .wouldBlock || code.rawValue == EWOULDBLOCK: return .wouldBlock
    case .failure(let code): throw SystemError(call: call(), errno: code)
    }
}
}

extension SystemCalls {
/// Closes a descriptor, once: `close(2)` is never retried.
///
/// On Linux and Darwin the descriptor is released even when `close` reports `EINTR`, so a retry
/// could close a descriptor another thread has just been given; `EINTR` counts as success.
/// - Throws: ``SystemError`` named `close`: `EBADF` (a double close, which is a bug) or `EIO`.
public static func closeDescriptor(_ fd: Int32) throws(SystemError) {
    if close(fd) == -1 {
        let code = Errno.current
        if code != .interrupted { throw SystemError(call: "close", errno: code) }
    }
}
}

extension SystemCalls {
/// Sets `O_NONBLOCK` on a descriptor (`fcntl(F_SETFL)`), keeping its other status flags.
public static func setNonBlocking(_ fd: Int32) throws(SystemError) {
    let flags = try SystemCalls.systemCall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
    try SystemCalls.systemCall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
}
}

extension SystemCalls {
/// Sets `FD_CLOEXEC` on a descriptor (`fcntl(F_SETFD)`): a child process will not inherit it.
public static func setCloseOnExec(_ fd: Int32) throws(SystemError) {
    try SystemCalls.systemCall("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
}
}

extension SystemCalls {
/// Sets an integer socket option (`setsockopt`), e.g. `SO_REUSEADDR` to `1`.
public static func setSocketOption(_ fd: Int32, level: Int32, option: Int32, value: Int32) throws(SystemError) {
    var value = value
    try SystemCalls.systemCall("setsockopt") { setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) }
}
}

extension SystemCalls {
/// Makes the next `close` of `fd` send a reset (RST) instead of a FIN, and drop unsent bytes:
/// `SO_LINGER` on with a zero timeout. This is how a client aborts a connection hard.
public static func setResetOnClose(_ fd: Int32) throws(SystemError) {
    var option = linger(l_onoff: 1, l_linger: 0)
    try SystemCalls.systemCall("setsockopt(SO_LINGER)") { setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size)) }
}
}

extension SystemCalls {
/// Reads an integer socket option (`getsockopt`), e.g. `SO_ERROR` after a non-blocking connect.
public static func socketOption(_ fd: Int32, level: Int32, option: Int32) throws(SystemError) -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    try SystemCalls.systemCall("getsockopt") { getsockopt(fd, level, option, &value, &length) }
    return value
}
}

extension SystemCalls {
/// Writes every byte of `bytes` to `fd` (`write(2)`), blocking: retries `EINTR` (through
/// ``SystemCalls.systemCall(_:_:)``) and carries on after a partial write until all is written. Any thread;
/// the descriptor is the caller's.
///
/// Meant for blocking descriptors (standard error, a terminal, a pipe): on a non-blocking one
/// `EAGAIN` is thrown like any other error.
/// - Throws: ``SystemError`` named `write`: `EPIPE` (the reader has gone; `SIGPIPE` must be
///   ignored to see it), `EBADF`, `EAGAIN`, ... Bytes before the failure have been written.
public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        let written = try SystemCalls.systemCall("write") { write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        // write(2) returns 0 only for a count of 0, which the loop never asks for.
        offset += written
    }
}
}

extension SystemCalls {
/// `writeAll` for an array of bytes: every byte written, `EINTR` retried.
public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
    // withUnsafeBytes rethrows untyped: carry the typed error out as a value.
    let result = bytes.withUnsafeBytes { buffer in Result { () throws(SystemError) in try SystemCalls.writeAll(fd, buffer) } }
    try result.get()
}
}

extension SystemCalls {
/// `writeAll` for text, as UTF-8: every byte written, `EINTR` retried.
public static func writeAll(_ fd: Int32, _ text: String) throws(SystemError) {
    try SystemCalls.writeAll(fd, Array(text.utf8))
}
}
