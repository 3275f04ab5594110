import CLibevent
import EventHTTPDuration

extension LoopExecutor {
    /// Suspends the calling task for `duration`, timed by a libevent timer on this loop.
    ///
    /// Any caller: on the loop thread (a Task preferring this executor, or an actor on it) the
    /// timer is armed at once with no hop; from elsewhere the arming hops to the loop. The task
    /// resumes on its own executor, never before `duration` has passed on `ContinuousClock`.
    ///
    /// Cancelling the task removes the timer event and throws `CancellationError` at once, without
    /// waiting for the timer. The cancellation handler may run on any thread. It hops to the loop,
    /// which frees the event and then resumes the task, so the event is gone by the time the
    /// task sees the error.
    ///
    /// - Throws: `CancellationError` if the task is or becomes cancelled;
    ///   ``LoopExecutor/ShutdownError`` if the executor shuts down first (or already has);
    ///   ``LibeventError`` if libevent cannot create the timer.
    public nonisolated(nonsending) func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }

    /// Suspends the calling task until `deadline`, timed by a libevent timer on this loop. The
    /// same rules as ``sleep(for:)``.
    public nonisolated(nonsending) func sleep(until deadline: ContinuousClock.Instant) async throws {
        // `nonisolated(unsafe)`: a `ManagedBuffer` is never `Sendable`; the sleeper is safe from
        // any thread by its own rules (see ``LoopSleeper``).
        nonisolated(unsafe) let sleeper = LoopSleeper.make(executor: self, deadline: deadline)
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                sleeper.start(continuation)
            }
        } onCancel: {
            sleeper.cancel()
        }
    }

    /// How many sleeps are waiting for their timer. Loop thread only.
    public var pendingSleeps: Int {
        thread.preconditionOnThread()
        return armedSleeps
    }

    /// Ends every armed sleep with ``ShutdownError``, for ``shutdown()``. Returns whether there
    /// was one. Loop thread only.
    ///
    /// The executor keeps no table of its sleepers (a dictionary entry per pending sleep): an
    /// armed sleeper's timer is an event on the base, added or active, so libevent's own list
    /// finds them all (`event_base_foreach_event`, told apart by their callback).
    func endArmedSleeps(on base: EventBase) -> Bool {
        thread.preconditionOnThread()
        guard armedSleeps > 0 else { return false }
        var found: [LoopSleeper] = []
        found.reserveCapacity(armedSleeps)
        // Collect first: the walk must not add or delete events.
        withUnsafeMutablePointer(to: &found) { list in
            _ = event_base_foreach_event(base.raw, { _, event, arg in
                if LoopSleeper.isSleeperCallback(event_get_callback(event)), let sleeper = event_get_callback_arg(event) {
                    arg!.assumingMemoryBound(to: [LoopSleeper].self).pointee
                        .append(Unmanaged<LoopSleeper>.fromOpaque(sleeper).takeUnretainedValue())
                }
                return 0
            }, list)
        }
        precondition(found.count == armedSleeps, "LoopExecutor: \(armedSleeps) sleeps armed, \(found.count) timers found")
        for sleeper in found { sleeper.finish(.failure(ShutdownError())) }
        return true
    }
}

/// What a ``LoopSleeper`` keeps besides its `struct event`: 24 B, so that with the 128 B event
/// the object is 168 B, a 176 B malloc chunk (with the deadline as a `ContinuousClock.Instant`,
/// 16 B and resilient, and a separate flag, it was 184 B, a 192 B chunk).
struct LoopSleeperState {
    /// Where a sleep is.
    enum Phase {
        /// Not armed yet.
        case waiting
        /// The timer is armed for this continuation. Unsafe, not checked:
        /// ``LoopSleeper/finish(_:)`` (the one place that resumes an armed sleeper) leaves this
        /// phase first, so it is resumed exactly once; a checked one costs a 40 B box per
        /// pending sleep.
        case armed(UnsafeContinuation<Void, any Error>)
        /// Ended: resumed, or cancelled before it was armed (`arm` then resumes it with
        /// `CancellationError` and arms nothing).
        case ended
    }

    let executor: LoopExecutor
    /// The deadline, in nanoseconds after ``LoopSleeper/epoch``, rounded up.
    let deadline: Int64
    var phase = Phase.waiting
}

/// One ``LoopExecutor/sleep(until:)`` in flight: its continuation and its timer, in one
/// allocation. The `struct event` (`event_get_struct_event_size()` bytes) is the object's tail,
/// as ``LoopTimer`` keeps it after its trailer; where the sleep cost four allocations (the
/// sleeper, an ``Event``, its `struct event` and the callback's closure) and an entry in the
/// executor's table, it costs this one.
///
/// Ownership: the sleeping function holds the sleeper until it resumes; the C event's callback
/// argument is an unretained pointer to it. The event is assigned (`event_assign`) and added
/// by `arm`, and deleted and unassigned by ``finish(_:)``, both on the loop thread, before the
/// continuation is resumed; so the event is never pending once the sleeper can go, and `deinit`
/// (on whatever thread drops the last reference) only frees the bytes. Whichever comes first,
/// the timer, the cancellation or the shutdown, calls ``finish(_:)``, which resumes the
/// continuation once.
final class LoopSleeper: ManagedBuffer<LoopSleeperState, UInt64> {
    // Shared across threads although a `ManagedBuffer` cannot be `Sendable` (the captures are
    // `nonisolated(unsafe)`): `executor` and `deadline` are immutable and Sendable. The rest
    // (`phase`, the event bytes) is touched on the executor's loop
    // thread only (`arm`, `fired`, `finish` check it). Other threads reach it only through
    // `executor.tryExecute`, whose lock orders their accesses after the loop's.

    /// Words of tail storage for the `struct event`: its size as the loaded libevent says.
    private static let eventWords = (event_get_struct_event_size() + 7) / 8

    /// The instant deadlines count from: the first use (so no sleep's "now" comes before it).
    private static let epoch = ContinuousClock.now

    /// `instant` in nanoseconds after ``epoch``, rounded up (so never earlier than `instant`).
    private static func deadlineOffset(_ instant: ContinuousClock.Instant) -> Int64 {
        let duration = epoch.duration(to: instant)
        let nanoseconds = duration.wholeNanoseconds  // toward zero, clamped to ±292 years
        return Duration.nanoseconds(nanoseconds) < duration ? nanoseconds + 1 : nanoseconds
    }

    /// Now, in nanoseconds after ``epoch``, rounded down (so never later than now).
    private static func nowOffset() -> Int64 {
        epoch.duration(to: .now).wholeNanoseconds
    }

    /// A sleeper for `executor`, until `deadline`, with no timer yet. Any thread.
    static func make(executor: LoopExecutor, deadline: ContinuousClock.Instant) -> LoopSleeper {
        let offset = deadlineOffset(deadline)
        let buffer = create(minimumCapacity: eventWords) { _ in
            LoopSleeperState(executor: executor, deadline: offset)
        }
        return unsafeDowncast(buffer, to: LoopSleeper.self)
    }

    private var executor: LoopExecutor { header.executor }

    /// The `struct event`: the tail, stable for the object's life.
    private var raw: OpaquePointer {
        withUnsafeMutablePointerToElements { OpaquePointer($0) }
    }

    /// Whether `callback` is the one every sleeper's timer calls.
    static func isSleeperCallback(_ callback: event_callback_fn?) -> Bool {
        guard let callback else { return false }
        return unsafeBitCast(callback, to: UnsafeRawPointer.self) == unsafeBitCast(sleeperTimerCallback, to: UnsafeRawPointer.self)
    }

    /// Arms the timer for `continuation`: at once on the loop thread, else through the queue.
    /// Any thread.
    @inline(never)
    func start(_ continuation: UnsafeContinuation<Void, any Error>) {
        nonisolated(unsafe) let sleeper = self
        if executor.thread.isCurrent {
            arm(continuation)
        } else if !executor.tryExecute({ sleeper.arm(continuation) }) {
            continuation.resume(throwing: LoopExecutor.ShutdownError())
        }
    }

    /// The task was cancelled. Any thread; on the loop thread it finishes at once, else the
    /// loop does (after an `arm` queued before it: both go through the executor's queue).
    func cancel() {
        nonisolated(unsafe) let sleeper = self
        if executor.thread.isCurrent {
            finish(.failure(CancellationError()))
        } else {
            // After shutdown, nothing to do: shutdown already resumed every armed sleeper, and
            // `start` resumes one it could not queue.
            _ = executor.tryExecute { sleeper.finish(.failure(CancellationError())) }
        }
    }

    private func arm(_ continuation: UnsafeContinuation<Void, any Error>) {
        let executor = self.executor
        executor.thread.preconditionOnThread()
        guard case .waiting = header.phase else {
            continuation.resume(throwing: CancellationError())
            return
        }
        guard let base = executor.liveBase else {
            continuation.resume(throwing: LoopExecutor.ShutdownError())
            return
        }
        let raw = self.raw
        // The callback finds the sleeper through `arg`: no retain to balance (see the type).
        guard event_assign(raw, base.raw, -1, 0, sleeperTimerCallback, Unmanaged.passUnretained(self).toOpaque()) == 0 else {
            continuation.resume(throwing: LibeventError.callFailed(function: "event_assign", errno: nil))
            return
        }
        // Count from now, not from the loop turn's cached start: fewer early firings to redo.
        event_base_update_cache_time(base.raw)
        var tv = timeval(duration: .nanoseconds(header.deadline - Self.nowOffset()) - executor.timerSkewForTesting)
        guard event_add(raw, &tv) == 0 else {
            event_debug_unassign(raw)
            continuation.resume(throwing: LibeventError.callFailed(function: "event_add", errno: nil))
            return
        }
        base.counters.liveEvents.bump()
        header.phase = .armed(continuation)
        executor.armedSleeps += 1
    }

    /// The timer fired. libevent times it from its cached clock, which can lag, so it may fire up
    /// to about a millisecond early: then it is re-armed for the rest.
    fileprivate func fired() {
        let executor = self.executor
        executor.thread.preconditionOnThread()
        let now = Self.nowOffset()
        let deadline = header.deadline
        guard now >= deadline else {
            executor.earlyTimerRearms += 1
            var tv = timeval(duration: .nanoseconds(deadline - now))
            if event_add(raw, &tv) != 0 {
                finish(.failure(LibeventError.callFailed(function: "event_add", errno: nil)))
            }
            return
        }
        finish(.success(()))
    }

    /// Takes the timer off the loop and resumes the task, if still pending; before the timer is
    /// armed, makes `arm` resume it with `CancellationError` instead (the one `finish` that can
    /// come first is a cancellation's). Loop thread only.
    func finish(_ result: Result<Void, any Error>) {
        let executor = self.executor
        executor.thread.preconditionOnThread()
        guard case .armed(let continuation) = header.phase else {
            header.phase = .ended
            return
        }
        header.phase = .ended
        // Safe from inside the event's own callback. The event goes before the task resumes.
        let raw = self.raw
        _ = event_del(raw)
        event_debug_unassign(raw)
        executor.liveBase?.counters.liveEvents.bump(-1)
        executor.armedSleeps -= 1
        continuation.resume(with: result)
    }
}

/// The C callback of every sleeper's timer: captures nothing, finds the sleeper through `arg`.
private let sleeperTimerCallback: event_callback_fn = { _, _, arg in
    // A strong reference for the length of the call: `finish` resumes the task, which may
    // drop the sleeper on another thread before `fired` returns.
    Unmanaged<LoopSleeper>.fromOpaque(arg!).takeUnretainedValue().fired()
}
