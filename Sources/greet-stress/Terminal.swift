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


/// A failure in words, with the errno's symbolic name where the Libevent layer's text lacks it:
/// `connect failed: Connection refused (ECONNREFUSED)`.
func describe(_ error: LibeventError) -> String {
    guard case .callFailed(let function, let code?) = error else { return "\(error)" }
    return "\(function) failed: \(String(cString: strerror(code))) (\(errnoName(code)))"
}
