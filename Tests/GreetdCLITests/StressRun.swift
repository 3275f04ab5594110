import Foundation
import Synchronization
import TestSupport

/// One run of the `greet-stress` binary built next to `greetd`, to its exit.
struct StressRun {
    let status: Int32
    let stdout: String
    let stderr: String

    init(_ arguments: [String], timeout: TimeInterval = 30) throws {
        let process = Process()
        process.executableURL = GreetdProcess.binary.deletingLastPathComponent().appendingPathComponent("greet-stress")
        process.arguments = arguments
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        try process.run()
        // Drain both pipes while the process runs, so that a full pipe cannot stall it.
        let out = Drain(outPipe.fileHandleForReading), err = Drain(errPipe.fileHandleForReading)
        guard process.exits(within: timeout) else { throw TestFailure("greet-stress did not exit within \(timeout)s") }
        status = process.terminationStatus
        stdout = out.text()
        stderr = err.text()
    }
}

/// Reads a pipe to its end on a thread of its own.
final class Drain: Sendable {
    private let data = Mutex<Data?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            let all = handle.readDataToEndOfFile()
            data.withLock { $0 = all }
            done.signal()
        }
    }

    /// Everything the pipe carried; waits for its end.
    func text() -> String {
        done.wait()
        return String(decoding: data.withLock { $0 } ?? Data(), as: UTF8.self)
    }
}
