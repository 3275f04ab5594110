import EventHTTPSystem
import EventHTTPCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text to standard output or standard error, written straight to the descriptor: no stdio
/// buffer, so progress lines and the summary come out in order and at once.
struct Output: Sendable {
    let fd: Int32

    static let standardOutput = Output(fd: 1)
    static let standardError = Output(fd: 2)

    /// Whether the descriptor is a terminal (progress is then rewritten in place).
    var isTerminal: Bool { isatty(fd) != 0 }

    func write(_ text: String) {
        // Ignored: a failure (EPIPE: the reader has gone) leaves the text nowhere to go.
        try? SystemCalls.writeAll(fd, text)
    }
}
