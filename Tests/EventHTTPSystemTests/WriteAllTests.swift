import Dispatch
import Foundation
import EventHTTPSystem
import Synchronization
import Testing

/// SIGUSR2 deliveries seen by the handler below (an atomic: safe in a signal handler).
private let writerSignals = Atomic<Int>(0)

/// What the writer thread in ``WriteAllTests/everyByteArrivesThoughWritesAreInterrupted()`` shares.
private final class InterruptedWriter: Sendable {
    let started = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)
    /// The writer thread lives until the test stops signalling it: a signal must never go to an
    /// exited thread, whose id another thread of the test process may have taken by then.
    let mayExit = DispatchSemaphore(value: 0)
    let thread = Mutex<ThreadID?>(nil)
    let outcome = Mutex<String>("")
}

@Suite("writeAll")
struct WriteAllTests {
    /// A megabyte through a 64 KiB pipe, the writer signalled (a handler without `SA_RESTART`)
    /// while the reader drains it: writes return short or fail with `EINTR`, and `writeAll`
    /// carries on until every byte, in order, has gone through.
    @Test func everyByteArrivesThoughWritesAreInterrupted() throws {
        try ProcessSignals.setHandler({ _ in writerSignals.add(1, ordering: .relaxed) }, for: SIGUSR2, restartingCalls: false)
        let pipe = try SystemCalls.makePipe()
        defer { try? SystemCalls.closeDescriptor(pipe.read) }
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let writer = InterruptedWriter()
        Thread.detachNewThread {
            writer.thread.withLock { $0 = .current }
            defer { writer.mayExit.wait() }
            // Teardown: EOF for the reader either way; close's failure changes nothing.
            defer { try? SystemCalls.closeDescriptor(pipe.write); writer.finished.signal() }
            do {
                // Foundation starts its threads with almost every signal blocked.
                try ProcessSignals.unblockOnThisThread([SIGUSR2])
                writer.started.signal()
                try SystemCalls.writeAll(pipe.write, payload)
                writer.outcome.withLock { $0 = "ok" }
            } catch {
                writer.outcome.withLock { $0 = "\(error)" }
                writer.started.signal()
            }
        }
        try #require(writer.started.wait(timeout: .now() + 30) == .success)
        let thread = try #require(writer.thread.withLock { $0 })
        defer { writer.mayExit.signal() }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            // Signal the writer while it is blocked on a full pipe (it stays alive until
            // `mayExit`, so the id is always its own). Ignored: a failure only means one
            // interruption fewer.
            try? thread.send(signal: SIGUSR2)
            let count = try SystemCalls.systemCall("read") { read(pipe.read, &chunk, chunk.count) }
            if count == 0 { break }
            received += chunk[0..<count]
        }
        try #require(writer.finished.wait(timeout: .now() + 30) == .success)
        #expect(writer.outcome.withLock { $0 } == "ok")
        #expect(received.count == payload.count)
        #expect(received == payload, "bytes lost, repeated or reordered")
        #expect(writerSignals.load(ordering: .relaxed) >= 1)
    }

    /// A reader gone: `EPIPE` (with `SIGPIPE` ignored, as greetd ignores it), thrown as `write`.
    @Test func aPipeWithNoReaderThrowsEPIPE() throws {
        ProcessSignals.ignoreBrokenPipe()
        let pipe = try SystemCalls.makePipe()
        defer { try? SystemCalls.closeDescriptor(pipe.write) }
        try SystemCalls.closeDescriptor(pipe.read)
        #expect(throws: SystemError(call: "write", errno: .brokenPipe)) { try SystemCalls.writeAll(pipe.write, "lost\n") }
    }

    @Test func nothingToWriteIsNoCall() throws {
        // A bad descriptor would fail any write: none is made for no bytes.
        try SystemCalls.writeAll(-1, [])
        #expect(throws: SystemError(call: "write", errno: .badFileDescriptor)) { try SystemCalls.writeAll(-1, [1]) }
    }
}
