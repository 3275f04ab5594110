import Dispatch
import Foundation
import EventHTTPSystem
import Synchronization
import Testing

/// SIGUSR1 deliveries seen by the handler below (an atomic: safe in a signal handler).
private let signalsHandled = Atomic<Int>(0)

/// What the reader thread in ``ProcessTests/readInterruptedByARealSignalIsRetried()`` shares.
private final class InterruptedReader: Sendable {
    let started = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)
    let thread = Mutex<ThreadID?>(nil)
    let attempts = Atomic<Int>(0)
    let outcome = Mutex<String>("")
}

@Suite("Process")
struct ProcessTests {
    /// A blocking `read` interrupted by a signal whose handler was installed without
    /// `SA_RESTART` fails with `EINTR`; the funnel reads again and gets the byte.
    @Test func readInterruptedByARealSignalIsRetried() throws {
        try ProcessSignals.setHandler({ _ in signalsHandled.add(1, ordering: .relaxed) }, for: SIGUSR1, restartingCalls: false)
        let pipe = try SystemCalls.makePipe()
        defer { try? SystemCalls.closeDescriptor(pipe.read); try? SystemCalls.closeDescriptor(pipe.write) }
        let reader = InterruptedReader()
        Thread.detachNewThread {
            reader.thread.withLock { $0 = .current }
            // Foundation starts its threads with almost every signal blocked.
            do {
                try ProcessSignals.unblockOnThisThread([SIGUSR1])
            } catch {
                reader.outcome.withLock { $0 = "\(error)" }
                reader.started.signal()
                reader.finished.signal()
                return
            }
            reader.started.signal()
            var byte: UInt8 = 0
            do {
                let count = try SystemCalls.systemCall("read") { () -> Int in
                    reader.attempts.add(1, ordering: .relaxed)
                    return read(pipe.read, &byte, 1)
                }
                reader.outcome.withLock { $0 = "read \(count): \(byte)" }
            } catch {
                reader.outcome.withLock { $0 = "\(error)" }
            }
            reader.finished.signal()
        }
        try #require(reader.started.wait(timeout: .now() + 30) == .success)
        try #require(reader.outcome.withLock { $0 }.isEmpty, "\(reader.outcome.withLock { $0 })")
        let thread = try #require(reader.thread.withLock { $0 })
        // Signal until the read has been interrupted and started again. A signal that lands
        // before the thread blocks in read interrupts nothing, hence the loop.
        let deadline = ContinuousClock.now + .seconds(30)
        while reader.attempts.load(ordering: .relaxed) < 2 {
            try #require(ContinuousClock.now < deadline, "read was never interrupted")
            try thread.send(signal: SIGUSR1)
            usleep(1_000)
        }
        var byte: UInt8 = 9
        #expect(try SystemCalls.systemCall("write") { write(pipe.write, &byte, 1) } == 1)
        try #require(reader.finished.wait(timeout: .now() + 30) == .success)
        #expect(reader.outcome.withLock { $0 } == "read 1: 9")
        #expect(reader.attempts.load(ordering: .relaxed) >= 2)
        #expect(signalsHandled.load(ordering: .relaxed) >= 1)
    }

    @Test func threadIDTellsThreadsApart() throws {
        let here = ThreadID.current
        #expect(here == ThreadID.current)
        #expect(here.isCurrent)
        let other = Mutex<ThreadID?>(nil)
        let done = DispatchSemaphore(value: 0)
        let seen = Mutex<Bool?>(nil)
        Thread.detachNewThread {
            other.withLock { $0 = .current }
            seen.withLock { $0 = here.isCurrent }
            done.signal()
        }
        try #require(done.wait(timeout: .now() + 30) == .success)
        #expect(try #require(other.withLock { $0 }) != here)
        #expect(seen.withLock { $0 } == false)
    }

    @Test func signallingWithABadNumberThrowsEINVAL() {
        #expect(throws: SystemError(call: "pthread_kill", errno: .invalidArgument)) {
            try ThreadID.current.send(signal: 12345)
        }
    }

    @Test func openFilesLimitIsReadable() throws {
        let limit = try ResourceLimits.openFiles()
        #expect(limit.rlim_cur > 0)
        #expect(limit.rlim_cur <= limit.rlim_max)
        // Setting the limit to what it is needs no privilege.
        try ResourceLimits.setOpenFiles(limit)
        let again = try ResourceLimits.openFiles()
        #expect(again.rlim_cur == limit.rlim_cur && again.rlim_max == limit.rlim_max)
    }

    @Test func raisingTheSoftLimitAboveTheHardOneIsEINVAL() throws {
        var limit = try ResourceLimits.openFiles()
        try #require(limit.rlim_max < rlim_t.max)
        limit.rlim_cur = limit.rlim_max + 1
        #expect(throws: SystemError(call: "setrlimit(RLIMIT_NOFILE)", errno: .invalidArgument)) {
            try ResourceLimits.setOpenFiles(limit)
        }
    }

    @Test func clocks() {
        // After 2020-01-01.
        #expect(SystemClock.realtime().tv_sec > 1_577_836_800)
        let first = SystemClock.monotonic()
        let second = SystemClock.monotonic()
        #expect((second.tv_sec, second.tv_nsec) >= (first.tv_sec, first.tv_nsec))
        #expect((0..<1_000_000_000).contains(first.tv_nsec))
    }

    @Test func processorCountIsPositive() {
        #expect(ProcessResources.onlineProcessorCount >= 1)
    }
}

@Suite("Process resources")
struct ProcessResourceTests {
    @Test func pageSizeIsAPowerOfTwo() {
        let size = ProcessResources.pageSize
        #expect(size >= 4096)
        #expect(size & (size - 1) == 0)
    }

    /// CPU time only grows, and burning some makes it grow.
    @Test func cpuTimeGrowsWithWork() throws {
        let before = try ProcessResources.cpuTime()
        #expect(before >= .zero)
        var after = before
        var spin: UInt64 = 0
        // Busy until the clock moves: getrusage's resolution is a scheduler tick or better. The
        // round limit (seconds of CPU) only turns a broken clock into a failure instead of a hang.
        for _ in 0..<100_000 where after == before {
            for i in 0..<100_000 { spin = spin &+ UInt64(i) ^ (spin >> 3) }
            after = try ProcessResources.cpuTime()
        }
        #expect(after > before, "\(spin)")
    }
}
