import EventHTTPSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One loop thread's pending log bytes, in memory that is never freed, so that a fatal-signal
/// handler on any thread can read it without locks or allocation.
///
/// The *claim* (`state`) orders the owner and the handler: the owner holds it (1) while it
/// appends or writes; the handler takes it for good (2) before it writes the bytes; 0 is free.
/// Once the handler has it, the owner never touches the bytes again (it writes lines alone).
///
/// Sendable (@unchecked): `bytes` is a fixed region that lives as long as the process; who may
/// touch it is decided by the atomic claim, as above.
final class LogBatchSlot: @unchecked Sendable {
    /// The most bytes a batch holds before it is written out early.
    static let capacity = 64 * 1024
    /// `capacity` bytes, never freed.
    let bytes: UnsafeMutableRawPointer
    /// Lent to a ``LogBatch``.
    let isTaken = Atomic<Bool>(false)
    /// 0 free, 1 the owner is in it, 2 a fatal-signal handler took it.
    let state = Atomic<Int>(0)
    /// Bytes waiting, valid to whoever holds the claim.
    let count = Atomic<Int>(0)
    /// Where they go.
    let fd = Atomic<Int32>(-1)

    init(bytes: UnsafeMutableRawPointer) {
        self.bytes = bytes
    }

    /// The owner enters; `false` once a fatal-signal handler has taken the slot.
    func claim() -> Bool {
        state.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
    }

    /// The owner leaves.
    func unclaim() {
        state.store(0, ordering: .releasing)
    }

    /// Writes the first `count` bytes and empties the slot. The owner, holding the claim.
    func writeOut(_ count: Int) {
        LogBatchSlots.writeLocked(fd.load(ordering: .relaxed), UnsafeRawBufferPointer(start: bytes, count: count))
        self.count.store(0, ordering: .relaxed)
    }

    /// Gives the slot back (after ``LogBatch/uninstall()`` emptied it).
    func release() {
        isTaken.store(false, ordering: .releasing)
    }
}

/// The fixed table of ``LogBatchSlot``s: one region of `count × capacity` bytes, reserved at the
/// first ``LogBatch/install(on:)`` and never freed (untouched pages cost no memory; a slot's
/// pages become resident only as far as its largest batch reached).
enum LogBatchSlots {
    /// The most loop threads batching at once; more get unbatched lines.
    static let count = 32
    /// Every slot, in a fixed order.
    static let all: [LogBatchSlot] = {
        let region = UnsafeMutableRawPointer.allocate(byteCount: count * LogBatchSlot.capacity, alignment: 4096)
        return (0..<count).map { LogBatchSlot(bytes: region + $0 * LogBatchSlot.capacity) }
    }()

    /// Held around every write of log bytes, batched or not, so that writes never interleave
    /// (a pipe splits a write larger than `PIPE_BUF` when full; a stream socket at its buffer
    /// size). Held only for the `write`, never while formatting.
    private static let writeLock = Lock<Int>(0)

    /// A free slot, or `nil` when all are taken.
    static func acquire() -> LogBatchSlot? {
        all.first { $0.isTaken.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged }
    }

    /// Writes `bytes` to `fd` under the write lock. Errors are dropped: the log has nowhere else
    /// to go (standard error gone).
    static func writeLocked(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        writeLock.withLock { _ in
            // EINTR and partial writes are handled inside.
            try? SystemCalls.writeAll(fd, bytes)
        }
    }

    /// The fatal-signal path: writes every taken slot's bytes it can claim, with `write(2)` only
    /// (no lock, no allocation). A slot whose owner is inside it is waited for a bounded number of
    /// spins, unless the owner is the crashing thread itself (it crashed mid-append: the count
    /// still describes whole lines). A slot another crashing thread took is left to it.
    static func flushForCrash() {
        let mine = pthread_getspecific(logBatchKey)
        for slot in all where slot.isTaken.load(ordering: .acquiring) {
            var claimed = false
            for _ in 0..<1_000_000 {
                let (exchanged, original) = slot.state.compareExchange(expected: 0, desired: 2, ordering: .acquiring)
                if exchanged { claimed = true; break }
                if original == 2 { break }
                if let mine, Unmanaged<LogBatch>.fromOpaque(mine)._withUnsafeGuaranteedRef({ $0.owns(slot) }) {
                    slot.state.store(2, ordering: .relaxed)
                    claimed = true
                    break
                }
            }
            guard claimed else { continue }
            var rest = UnsafeRawBufferPointer(start: slot.bytes, count: slot.count.load(ordering: .relaxed))
            let fd = slot.fd.load(ordering: .relaxed)
            while !rest.isEmpty {
                // write(2) is async-signal-safe; valueOrErrno only retries EINTR.
                guard case .success(let written) = SystemCalls.valueOrErrno({ write(fd, rest.baseAddress!, rest.count) }),
                      written > 0 else { break }
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
            }
            slot.count.store(0, ordering: .relaxed)
        }
    }
}

/// The handler for fatal signals (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGABRT`, and
/// `SIGTRAP`, which is how Swift traps on arm64): writes the log batches it can claim
/// (``LogBatchSlots/flushForCrash()``), puts back the handler that was there before (the default
/// action, or Swift's backtracer) and raises the signal again, so the process dies as it would
/// have, core and backtrace included.
///
/// Limits: only lines already in a batch are written (a line being formatted is lost); a batch
/// whose owner is writing at that moment is waited for briefly, then skipped; the handler runs
/// on the crashing thread's stack (an alternate one only if that thread set one up, so a stack
/// overflow may kill the process before it runs); `SIGKILL` and power loss lose at most the
/// current pass's lines.
enum FatalSignalFlush {
    static let signals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP]

    /// The actions found at installation, one per entry of ``signals``. nonisolated(unsafe):
    /// written once inside `installed`'s one-time initialiser, before our handler is installed
    /// for that signal, and only read afterwards (by the handler).
    nonisolated(unsafe) private static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: signals.count)

    private static let installed: Bool = {
        _ = LogBatchSlots.all
        for (index, signal) in signals.enumerated() {
            var action = sigaction()
            action.handler = fatalSignalHandler
            action.sa_flags = SA_ONSTACK
            // sigemptyset fails only for a NULL set.
            _ = sigemptyset(&action.sa_mask)
            // sigaction fails only for a bad signal number; these are all valid.
            _ = try? SystemCalls.systemCall("sigaction") { sigaction(signal, nil, previous + index) }
            _ = try? SystemCalls.systemCall("sigaction") { sigaction(signal, &action, nil) }
        }
        return true
    }()

    /// Installs the handler, once per process. Any thread.
    static func installOnce() {
        _ = installed
    }

    /// For a test's forked child only: the handler falls back to the default action instead of
    /// the one found at installation (Swift's backtracer), and writes only the calling thread's
    /// batch (the copies of other threads' batches are marked taken). Plain stores, no allocation.
    static func prepareForkedTestChild() {
        let mine = pthread_getspecific(logBatchKey)
        for slot in LogBatchSlots.all {
            let isMine = mine.map { Unmanaged<LogBatch>.fromOpaque($0)._withUnsafeGuaranteedRef { $0.owns(slot) } } ?? false
            if !isMine { slot.state.store(2, ordering: .relaxed) }
        }
        for index in signals.indices {
            previous[index] = sigaction()
            previous[index].handler = SIG_DFL
        }
    }

    fileprivate static func restorePrevious(_ signal: Int32) {
        guard let index = signals.firstIndex(of: signal) else { return }
        _ = sigaction(signal, previous + index, nil)
    }
}

/// Capture-free, as a C signal handler must be.
private func fatalSignalHandler(_ signal: Int32) {
    LogBatchSlots.flushForCrash()
    FatalSignalFlush.restorePrevious(signal)
    // Pending until this handler returns (the signal is blocked while it runs), then delivered
    // to the previous action at the point of the fault.
    _ = raise(signal)
}
