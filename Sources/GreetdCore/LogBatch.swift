import EventHTTPSystem
import EventHTTPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Log lines of one loop thread, gathered during a loop pass and written with one `write(2)` at
/// its end, before the loop waits for events again.
///
/// ``FileDescriptorLogHandler`` hands every line to ``write(_:to:)``. On a thread with an
/// installed batch (a worker loop: ``install(on:)``) the line is copied into the thread's buffer
/// and a ``LoopTurnHook`` is scheduled; the hook writes the buffer when the pass's callbacks are
/// done. On any other thread (main, signal handling, tests) the line is written at once.
///
/// Guarantees:
/// - **Order**: a thread's lines reach the descriptor in the order it logged them. Lines of
///   different threads are ordered by when each batch (or unbatched line) is written; no line is
///   ever split or interleaved with another (every write of a log line or batch holds one
///   process-wide lock, so large batches cannot interleave on a full pipe or a socket).
/// - **Delay**: a line logged in a loop callback is written before that pass ends, so before
///   the loop next waits (see ``LoopTurnHook`` for why the same pass), or sooner: once
///   ``flushThreshold`` bytes have gathered, they go out at once. A long pass (2,000 aborts
///   seen in one `epoll_wait`) then does not hold its first lines until its last callback: the
///   reader gets them within about a hundred lines of being logged. A line logged on the loop
///   thread outside ``EventBase/run()`` is written in the loop's first pass, or by
///   ``uninstall()``.
/// - **Bounded memory**: a batch holds at most ``LogBatchSlot/capacity`` bytes; a line that would
///   overflow it writes the batch out first, a longer line goes out alone.
/// - **Completeness**: ``uninstall()`` (worker exit) writes what is left; a fatal signal writes
///   every batch it can claim (``FatalSignalFlush``).
///
/// Ownership: the batch owns its hook (which holds the base); it borrows a slot from
/// ``LogBatchSlots`` and gives it back in ``uninstall()``.
/// Threading: confined to the thread that installed it; only the fatal-signal handler touches
/// its slot from elsewhere, through the slot's claim.
public final class LogBatch {
    /// Bytes gathered that are written at once, before the pass ends: about 100 lines, so a
    /// burst's lines reach the reader while the burst is handled (one `write(2)` per 16 KiB
    /// costs little beside the lines' own work).
    static let flushThreshold = 16 * 1024
    private let slot: LogBatchSlot
    private var hook: LoopTurnHook?
    private var isScheduled = false
    private let thread = ThreadID.current

    private init(slot: LogBatchSlot) {
        self.slot = slot
    }

    deinit {
        assert(hook == nil, "LogBatch dropped without uninstall()")
    }

    /// Starts batching this thread's log lines on `base`'s loop. Call on the loop thread, before
    /// ``EventBase/run()``; pair with ``uninstall()`` before the base goes.
    /// - Returns: the batch, or `nil` when every slot is taken (more than
    ///   ``LogBatchSlots/count`` loop threads at once): this thread's lines are then written one
    ///   by one, as on any other thread.
    public static func install(on base: EventBase) throws(LibeventError) -> LogBatch? {
        precondition(current == nil, "a log batch is already installed on this thread")
        FatalSignalFlush.installOnce()
        guard let slot = LogBatchSlots.acquire() else { return nil }
        let batch = LogBatch(slot: slot)
        do {
            batch.hook = try LoopTurnHook(base: base) { [unowned batch] in batch.flush() }
        } catch {
            slot.release()
            throw error
        }
        // pthread_setspecific fails only with ENOMEM for a key's first value on a thread.
        let result = pthread_setspecific(logBatchKey, Unmanaged.passUnretained(batch).toOpaque())
        precondition(result == 0, "pthread_setspecific: \(result)")
        return batch
    }

    /// Writes what is left and stops batching: later lines of this thread are written at once.
    /// On the installing thread; before the base is freed.
    public func uninstall() {
        thread.preconditionIsCurrent()
        flush()
        _ = pthread_setspecific(logBatchKey, nil)
        hook = nil
        slot.release()
    }

    /// The calling thread's batch, if any.
    static var current: LogBatch? {
        pthread_getspecific(logBatchKey).map { Unmanaged<LogBatch>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The one way a log line goes out: into the calling thread's batch, or straight to `fd`.
    /// Any thread. `line` ends with its newline.
    public static func write(_ line: UnsafeRawBufferPointer, to fd: Int32) {
        if let batch = current {
            batch.append(line, fd: fd)
        } else {
            LogBatchSlots.writeLocked(fd, line)
        }
    }

    /// Number of bytes waiting (for tests). On the batch's thread.
    var pendingByteCount: Int { slot.count.load(ordering: .relaxed) }

    private func append(_ line: UnsafeRawBufferPointer, fd: Int32) {
        guard slot.claim() else {
            // A fatal-signal handler owns the slot: the process is going; write the line alone.
            LogBatchSlots.writeLocked(fd, line)
            return
        }
        var count = slot.count.load(ordering: .relaxed)
        if count > 0 && (slot.fd.load(ordering: .relaxed) != fd || count + line.count > LogBatchSlot.capacity) {
            slot.writeOut(count)
            count = 0
        }
        if line.count > LogBatchSlot.capacity {
            LogBatchSlots.writeLocked(fd, line)
        } else if line.count > 0 {
            slot.fd.store(fd, ordering: .relaxed)
            (slot.bytes + count).copyMemory(from: line.baseAddress!, byteCount: line.count)
            count += line.count
            if count >= Self.flushThreshold {
                slot.writeOut(count)
                count = 0
            }
        }
        slot.count.store(count, ordering: .relaxed)
        slot.unclaim()
        if count > 0 && !isScheduled {
            isScheduled = true
            hook?.schedule()
        }
    }

    /// Writes the batch (one `write(2)`, or more only for a partial write). On the batch's thread.
    func flush() {
        isScheduled = false
        guard slot.claim() else { return }
        let count = slot.count.load(ordering: .relaxed)
        if count > 0 { slot.writeOut(count) }
        slot.unclaim()
    }

    /// Whether `slot` is this batch's (for the fatal-signal handler).
    func owns(_ slot: LogBatchSlot) -> Bool { self.slot === slot }
}

/// The thread-local key holding the thread's ``LogBatch`` (unretained: the installer's reference
/// keeps it alive until ``LogBatch/uninstall()`` clears the key).
let logBatchKey: pthread_key_t = {
    var key = pthread_key_t()
    // Fails only when the process has used up PTHREAD_KEYS_MAX keys (1024 on Linux).
    let result = pthread_key_create(&key, nil)
    precondition(result == 0, "pthread_key_create: \(result)")
    return key
}()

extension ThreadID {
    func preconditionIsCurrent() {
        precondition(isCurrent, "LogBatch used off its thread")
    }
}
