import Foundation
import Synchronization
import TestSupport
import Testing

/// The `greetd` binary built next to this test bundle, run as a child process with its
/// standard error collected line by line as it arrives.
final class GreetdProcess: Sendable {
    struct Line: Sendable {
        let arrival: Date
        let text: String
    }

    /// The `greetd` under test: `$GREETD_BINARY` if set (CI points it at the release build, whose
    /// optimised object lifetimes a debug build does not exercise), else the one built next to
    /// this test bundle.
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["GREETD_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        // Linux: .build/debug/greetdPackageTests.xctest is the test executable itself.
        if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("greetd").path) {
            directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        }
        return directory.appendingPathComponent("greetd")
    }

    let process: Process
    private let lines = Mutex<[Line]>([])
    private let stdout = Mutex<String>("")
    private let readers = DispatchGroup()

    /// Runs greetd (or `executable`, e.g. a wrapper such as `prlimit` that runs greetd itself)
    /// with this process's environment, `environment` added, and the variables in `unsetting` removed.
    init(_ arguments: [String], environment: [String: String] = [:], unsetting: [String] = [],
         executable: URL? = nil) throws {
        process = Process()
        process.executableURL = executable ?? Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        for key in unsetting { env[key] = nil }
        process.environment = env
        let errPipe = Pipe()
        let outPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = outPipe
        try process.run()
        let errHandle = errPipe.fileHandleForReading
        let outHandle = outPipe.fileHandleForReading
        readers.enter()
        Thread.detachNewThread { [self] in
            var pending = Data()
            while true {
                let chunk = errHandle.availableData
                if chunk.isEmpty { break }
                let now = Date()
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 10) {
                    let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lines.withLock { $0.append(Line(arrival: now, text: text)) }
                }
            }
            if !pending.isEmpty {
                lines.withLock { $0.append(Line(arrival: Date(), text: String(decoding: pending, as: UTF8.self))) }
            }
            readers.leave()
        }
        readers.enter()
        Thread.detachNewThread { [self] in
            let data = outHandle.readDataToEndOfFile()
            stdout.withLock { $0 = String(decoding: data, as: UTF8.self) }
            readers.leave()
        }
    }

    var stderrLines: [Line] { lines.withLock { $0 } }
    var stderrText: String { stderrLines.map(\.text).joined(separator: "\n") }
    var stdoutText: String { stdout.withLock { $0 } }

    /// Waits for a stderr line containing `fragment`.
    @discardableResult
    func waitForLine(containing fragment: String, timeout: TimeInterval = 10) throws -> Line {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stderrLines.first(where: { $0.text.contains(fragment) }) { return line }
            Thread.sleep(forTimeInterval: 0.005)
        }
        throw TestFailure("no stderr line containing \"\(fragment)\" within \(timeout)s; got:\n\(stderrText)")
    }

    /// The port from `Server listening on http://127.0.0.1:PORT`.
    func listeningPort() throws -> UInt16 {
        let line = try waitForLine(containing: "Server listening on http://")
        // Text (`... http://127.0.0.1:8080`) or JSON (`..."msg":"Server listening on http://127.0.0.1:8080"}`).
        let afterURL = line.text.components(separatedBy: "Server listening on http://").last ?? ""
        let hostPort = afterURL.prefix { $0 != "\"" && $0 != " " }
        guard let port = hostPort.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            throw TestFailure("cannot read a port from: \(line.text)")
        }
        return port
    }

    /// Waits for the process to exit and for its output to be read; returns the exit status.
    /// Waits until at least `count` stderr lines contain `fragment`, and returns them.
    @discardableResult
    func waitForLines(containing fragment: String, count: Int, timeout: TimeInterval = 10) throws -> [Line] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let matching = stderrLines.filter { $0.text.contains(fragment) }
            if matching.count >= count { return matching }
            guard Date() < deadline else {
                throw TestFailure("\(matching.count) of \(count) stderr lines containing \"\(fragment)\" within \(timeout)s; got:\n\(stderrText)")
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    func waitForExit(timeout: TimeInterval = 10) throws -> Int32 {
        guard process.exits(within: timeout) else { throw TestFailure("greetd did not exit within \(timeout)s") }
        readers.wait()
        return process.terminationStatus
    }

    /// Sends `number` to greetd. A failure is ignored: `kill` fails only with `ESRCH` once greetd
    /// has exited, which the test's next wait reports.
    func signal(_ number: Int32) { _ = kill(process.processIdentifier, number) }

    /// Never leaves a greetd behind: SIGTERM, then SIGKILL if it is still there after 3 s.
    deinit {
        _ = process.exits(within: 0, grace: 3)
    }
}
