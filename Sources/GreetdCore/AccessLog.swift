import GreetdRules
import EventHTTPSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where greetd's access lines go: `--access-log stderr|off|PATH`.
public enum AccessLogDestination: Equatable, Sendable, CustomStringConvertible {
    /// Standard error, with the other log lines (the default).
    case stderr
    /// Nowhere.
    case off
    /// A file, opened for appending (created `0640`), reopened on `SIGHUP`.
    case file(String)

    /// `stderr`, `off`, or anything else as a path. An empty text is no path: `nil`.
    public init?(argument: String) {
        switch argument {
        case "stderr": self = .stderr
        case "off": self = .off
        case "": return nil
        default: self = .file(argument)
        }
    }

    /// As `--access-log` spells it.
    public var description: String {
        switch self {
        case .stderr: return "stderr"
        case .off: return "off"
        case .file(let path): return path
        }
    }
}

/// greetd's access log: one line per request, whatever `--log-level` says, to standard error,
/// to a file, or nowhere.
///
/// A file is held on one descriptor number for the process's life; ``reopen()`` (on `SIGHUP`,
/// after logrotate moved the file) opens the path again and `dup2`s the new file onto that
/// number, so a worker writing at that moment writes whole lines to the old file or the new one,
/// never to a closed descriptor, and no lock is needed on the write path. Lines go through
/// ``LogBatch`` like every other log line (one `write(2)` per loop pass and descriptor).
///
/// Sendable: every stored property is immutable; the descriptor's file changes only through
/// `dup2`, which the kernel makes atomic.
public final class AccessLog: Sendable {
    /// Where the lines go.
    public let destination: AccessLogDestination
    /// Text or JSON.
    public let format: LogOutputFormat
    /// Whether text lines carry an sd-daemon priority and no timestamp (standard error is
    /// journald's stream).
    public let journal: Bool
    /// The descriptor written to: 2, the file's, or -1 for `off`.
    private let fd: Int32

    /// Opens the destination: a file is created `0640` if missing and appended to.
    /// - Parameter journalStream: `JOURNAL_STREAM` (for `stderr`: see
    ///   ``FileDescriptorLogHandler/isJournalStream(fd:journalStream:)``).
    /// - Throws: ``SystemError`` naming the path when the file cannot be opened.
    public init(destination: AccessLogDestination, format: LogOutputFormat = .text,
                journalStream: String? = currentJournalStream()) throws(SystemError) {
        self.destination = destination
        self.format = format
        switch destination {
        case .stderr:
            fd = 2
            journal = FileDescriptorLogHandler.isJournalStream(fd: 2, journalStream: journalStream)
        case .off:
            fd = -1
            journal = false
        case .file(let path):
            fd = try Self.openFile(path)
            journal = false
        }
    }

    deinit {
        if case .file = destination { try? SystemCalls.closeDescriptor(fd) }
    }

    /// Whether any line is written.
    public var isEnabled: Bool { fd >= 0 }

    /// For a file: opens the path again and puts the new file under the same descriptor (after
    /// logrotate renamed the old one, lines go to the new file). Any thread. Does nothing for
    /// `stderr` and `off`.
    /// - Returns: whether a file was reopened.
    /// - Throws: ``SystemError`` naming the path; the old file then stays in use.
    @discardableResult
    public func reopen() throws(SystemError) -> Bool {
        guard case .file(let path) = destination else { return false }
        let fresh = try Self.openFile(path)
        defer { try? SystemCalls.closeDescriptor(fresh) }
        // dup2 keeps FD_CLOEXEC off on the target; greetd spawns nothing, so that is harmless.
        try SystemCalls.systemCall("dup2(\(path))") { dup2(fresh, fd) }
        return true
    }

    /// Writes one access line for request `requestID` (at level `info`).
    public func write(_ record: AccessRecord, requestID: String) {
        guard fd >= 0 else { return }
        var line: [UInt8]
        switch format {
        case .text:
            line = formatLogLine(level: .info, message: record.textMessage, requestID: requestID, at: .now,
                                 journalPriority: journal, timestamp: !journal)
        case .json:
            line = formatJSONLogLine(level: .info, message: "access", requestID: requestID, fields: record.jsonFields, at: .now)
        }
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { LogBatch.write($0, to: fd) }
    }

    /// Opens `path` for appending; created `0640` (whatever the umask) if it did not exist.
    private static func openFile(_ path: String) throws(SystemError) -> Int32 {
        let flags = O_WRONLY | O_APPEND | O_CLOEXEC
        switch SystemCalls.valueOrErrno({ open(path, flags | O_CREAT | O_EXCL, 0o640) }) {
        case .success(let fd):
            // A umask such as 077 would narrow the mode: the file is meant to be readable by the
            // log reader's group.
            _ = fchmod(fd, 0o640)
            return fd
        case .failure(let code) where code.rawValue == EEXIST:
            return try SystemCalls.systemCall("open(\(path))") { open(path, flags) }
        case .failure(let code):
            throw SystemError(call: "open(\(path))", errno: code)
        }
    }
}
