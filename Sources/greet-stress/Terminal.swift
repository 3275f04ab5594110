#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Libevent

/// Text to standard output or standard error, written straight to the descriptor: no stdio
/// buffer, so progress lines and the summary come out in order and at once.
struct Output: Sendable {
    let fd: Int32

    static let standardOutput = Output(fd: 1)
    static let standardError = Output(fd: 2)

    /// Whether the descriptor is a terminal (progress is then rewritten in place).
    var isTerminal: Bool { isatty(fd) != 0 }

    func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                #if canImport(Glibc)
                Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                #else
                Darwin.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                #endif
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
        bytes.removeAll()
    }
}

/// Raises the soft limit on open files to the hard limit: every connection is a descriptor.
/// - Returns: the soft limit now in force.
@discardableResult
func raiseOpenFileLimit() -> UInt64 {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = Int32(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(resource, &raised) == 0 { limit = raised }
    }
    return UInt64(limit.rlim_cur)
}

/// Caps the soft limit on open files at `FD_SETSIZE` when libevent runs on `select`: Debian's
/// libevent is built with `_FORTIFY_SOURCE`, whose `FD_SET` aborts the process for a descriptor
/// of 1024 or more, so `socket` must fail with `EMFILE` (a retried connect) first.
/// - Returns: whether the limit was lowered.
func capOpenFilesForSelect() -> Bool {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = Int32(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    let cap = rlim_t(FD_SETSIZE)
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur > cap else { return false }
    limit.rlim_cur = cap
    return setrlimit(resource, &limit) == 0
}

/// The symbolic name of an errno, as reports count failures: `ECONNREFUSED`, `EMFILE`.
func errnoName(_ code: Int32) -> String {
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

/// A failure in words, with the errno's symbolic name where the Libevent layer's text lacks it:
/// `connect failed: Connection refused (ECONNREFUSED)`.
func describe(_ error: LibeventError) -> String {
    guard case .callFailed(let function, let code?) = error else { return "\(error)" }
    return "\(function) failed: \(String(cString: strerror(code))) (\(errnoName(code)))"
}
