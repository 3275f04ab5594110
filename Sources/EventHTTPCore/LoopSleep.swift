import Synchronization

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
        let sleeper = LoopSleeper(executor: self, deadline: deadline)
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
        return sleepers.count
    }
}

/// One ``LoopExecutor/sleep(until:)`` in flight: its timer event and its continuation.
///
/// Ownership: while the timer is armed, the executor's `sleepers` table holds the sleeper, and the
/// sleeper owns its ``Event``. Whichever comes first, the timer, the cancellation or the
/// shutdown, calls ``finish(_:)``. That frees the event, leaves the table and resumes the
/// continuation, once.
final class LoopSleeper: @unchecked Sendable {
    // @unchecked Sendable:
    // - `executor`, `deadline` and `cancelled` (an atomic) are safe from any thread.
    // - `continuation` and `event` are touched only on the executor's loop thread
    //   (`arm`, `fired`, `finish` check it). Other threads reach them only through
    //   `executor.tryExecute`, whose lock orders their accesses after the loop's.
    private let executor: LoopExecutor
    private let deadline: ContinuousClock.Instant
    /// Set by the cancellation handler, from any thread, before it hops to the loop. `arm` reads
    /// it so that a cancellation that came before the timer was armed is not missed.
    private let cancelled = Atomic<Bool>(false)
    /// Unsafe, not checked: ``finish(_:)`` (the one place that resumes an armed sleeper) clears
    /// it first, so it is resumed exactly once; a checked one costs a 40 B box per pending sleep.
    private var continuation: UnsafeContinuation<Void, any Error>?
    private var event: Event?

    init(executor: LoopExecutor, deadline: ContinuousClock.Instant) {
        self.executor = executor
        self.deadline = deadline
    }

    /// Arms the timer for `continuation`: at once on the loop thread, else through the queue.
    /// Any thread.
    func start(_ continuation: UnsafeContinuation<Void, any Error>) {
        if executor.thread.isCurrent {
            arm(continuation)
        } else if !executor.tryExecute({ self.arm(continuation) }) {
            continuation.resume(throwing: LoopExecutor.ShutdownError())
        }
    }

    /// The task was cancelled. Any thread; on the loop thread it finishes at once.
    func cancel() {
        cancelled.store(true, ordering: .releasing)
        if executor.thread.isCurrent {
            finish(.failure(CancellationError()))
        } else {
            // After shutdown, nothing to do: shutdown already resumed every armed sleeper, and
            // `start` resumes one it could not queue.
            _ = executor.tryExecute { self.finish(.failure(CancellationError())) }
        }
    }

    private func arm(_ continuation: UnsafeContinuation<Void, any Error>) {
        executor.thread.preconditionOnThread()
        if cancelled.load(ordering: .acquiring) {
            continuation.resume(throwing: CancellationError())
            return
        }
        guard let base = executor.liveBase else {
            continuation.resume(throwing: LoopExecutor.ShutdownError())
            return
        }
        do {
            // Count from now, not from the loop turn's cached start: fewer early firings to redo.
            base.updateCachedTime()
            let event = try Event(base: base) { [unowned self] _ in self.fired() }
            try event.add(timeout: Self.roundedUp(deadline - .now - executor.timerSkewForTesting))
            self.event = event
            self.continuation = continuation
            executor.sleepers[ObjectIdentifier(self)] = self
        } catch {
            event = nil
            continuation.resume(throwing: error)
        }
    }

    /// The timer fired. libevent times it from its cached clock, which can lag, so it may fire up
    /// to about a millisecond early: then it is re-armed for the rest.
    private func fired() {
        executor.thread.preconditionOnThread()
        let now = ContinuousClock.now
        guard now >= deadline else {
            executor.earlyTimerRearms += 1
            do {
                try event?.add(timeout: Self.roundedUp(deadline - now))
            } catch {
                finish(.failure(error))
            }
            return
        }
        finish(.success(()))
    }

    /// Frees the event, leaves the executor's table, and resumes the task, if still pending.
    /// Loop thread only.
    func finish(_ result: Result<Void, any Error>) {
        executor.thread.preconditionOnThread()
        guard let continuation else { return }
        self.continuation = nil
        event = nil  // event_free: safe from inside the event's own callback
        executor.sleepers[ObjectIdentifier(self)] = nil
        continuation.resume(with: result)
    }

    /// `timeval` keeps whole microseconds and truncates; round up so the timer is never early
    /// by the truncated part.
    private static func roundedUp(_ duration: Duration) -> Duration {
        duration > .zero ? duration + .nanoseconds(999) : .zero
    }
}
